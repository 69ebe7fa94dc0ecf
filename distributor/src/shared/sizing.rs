//! Batch sizing for the lanes: the gas per action a token's batches attach (configured, or learned from its
//! recent outcomes: [`crate::gas`]), the batch size whose receipts tile the chunk ([`crate::tile`]), pacing
//! (how deep a queue of ours the chain may hold), and the NEAR one round of signing may take for gas (the
//! reserve the NEAR balance guard keeps above the minimum).

use std::time::{Duration, Instant};

use payouts_store::Yocto;

use crate::gas::{GasChoice, TokenGas};
use crate::plan::Limits;

use super::Shared;

/// How often a token's gas per action is chosen again from its recent outcomes.
const GAS_REFRESH: Duration = Duration::from_millis(500);

impl Shared {
    /// Batch limits for `token`: the gas per action chosen for it ([`Shared::refresh_gas`]), else its
    /// configured gas per transfer; with `tile_chunks`, the batch size whose receipts tile the chunk
    /// ([`crate::tile`]).
    pub(crate) fn limits_for(&self, token: &str) -> Limits {
        let choice = self.gas_for(token);
        let mut limits = self.limits.with_gas(choice.gas_per_action);
        if let Some(t) = self.tiling(&limits, &choice) {
            limits.max_transfers_per_tx = t.transfers_per_tx;
        }
        limits
    }

    /// How batches of the size `limits` allow at most tile the chunk, from the node's fees and the gas a
    /// transfer of the token burns (its learned p99, else the gas attached). `None`: tiling is off.
    pub(crate) fn tiling(
        &self,
        limits: &Limits,
        choice: &GasChoice,
    ) -> Option<crate::tile::Tiling> {
        if !self.cfg.tile_chunks {
            return None;
        }
        let p = &self.protocol;
        let method = choice.p99_burnt.unwrap_or(choice.gas_per_action);
        let method_compute =
            u128::from(method) * u128::from(self.cfg.compute_per_gas_percent) / 100;
        let model = crate::tile::ChunkModel {
            chunk_limit: p.chunk_gas_limit,
            per_tx_conversion: p.send_fees.per_receipt,
            per_transfer_conversion: p.send_fees.per_action,
            per_receipt: p.fixed_fees.per_receipt,
            per_transfer: p
                .fixed_fees
                .per_action
                .saturating_add(u64::try_from(method_compute).unwrap_or(u64::MAX)),
            margin_percent: self.cfg.tile_margin_percent,
        };
        Some(crate::tile::tile(&model, limits.transfers_per_tx()))
    }

    /// The gas per action `token`'s next batches attach, and why.
    pub(crate) fn gas_for(&self, token: &str) -> GasChoice {
        self.lock().gas.get(token).map_or_else(
            || GasChoice::configured(self.cfg.gas_per_transfer_for(token)),
            |(c, _)| *c,
        )
    }

    /// Chooses `token`'s gas per action again from its recent outcomes ([`crate::gas`]), at most every
    /// [`GAS_REFRESH`]; a failed read keeps the last choice.
    pub(crate) async fn refresh_gas(&self, token: &str) {
        if !self.cfg.learn_gas {
            return;
        }
        if self
            .lock()
            .gas
            .get(token)
            .is_some_and(|(_, at)| at.elapsed() < GAS_REFRESH)
        {
            return;
        }
        let samples = match self.conn().await {
            Ok(mut conn) => {
                payouts_store::gas::gas_samples(
                    &mut conn,
                    token,
                    crate::gas::SAMPLES,
                    self.protocol.fixed_fees,
                )
                .await
            }
            Err(e) => Err(e),
        };
        let samples = match samples {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, token, "reading gas samples failed; keeping the last choice");
                return;
            }
        };
        let cfg = &self.cfg;
        let tgas = crate::config::TGAS;
        let mut choice = crate::gas::choose(
            cfg.gas_per_transfer_for(token),
            &samples,
            cfg.gas_margin_percent,
            cfg.min_gas_per_transfer_tgas.saturating_mul(tgas),
            cfg.max_gas_per_transfer_tgas.saturating_mul(tgas),
        );
        // One action must always fit the node's cap on a transaction's prepaid gas.
        choice.gas_per_action = choice.gas_per_action.min(self.limits.max_tx_gas).max(1);
        let previous = self
            .lock()
            .gas
            .insert(token.to_string(), (choice, Instant::now()));
        *self.metrics.gas.lock().unwrap_or_else(|p| p.into_inner()) = self.gas_report();
        let before = previous.map_or(cfg.gas_per_transfer_for(token), |(c, _)| c.gas_per_action);
        if before != choice.gas_per_action {
            tracing::info!(
                token,
                gas_per_action = choice.gas_per_action,
                previous = before,
                basis = ?choice.basis,
                samples = choice.samples,
                p99_burnt = choice.p99_burnt,
                transfers_per_tx = {
                    let l = self.limits.with_gas(choice.gas_per_action);
                    self.tiling(&l, &choice)
                        .map_or(l.transfers_per_tx(), |t| t.transfers_per_tx)
                },
                "gas per transfer changed"
            );
        }
    }

    /// NEAR that one round of signing may take from the treasury before its receipts refund the unused
    /// gas: per lane held, the largest transaction's prepaid gas (actions × gas per action, any token seen)
    /// at the latest gas price, which is never below the protocol's `min_gas_price`. The NEAR balance guard
    /// keeps it above `min_near_balance`, so a price rise cannot take the treasury below the minimum.
    pub(crate) fn gas_reserve(&self) -> Yocto {
        let s = self.lock();
        let price = s.gas_price.unwrap_or(self.protocol.min_gas_price);
        let default = self.limits.with_gas(self.cfg.gas_per_transfer());
        let per_tx = s
            .gas
            .values()
            .map(|(c, _)| {
                let l = self.limits.with_gas(c.gas_per_action);
                u128::from(c.gas_per_action) * l.transfers_per_tx() as u128
            })
            .chain(std::iter::once(
                u128::from(default.gas_per_transfer) * default.transfers_per_tx() as u128,
            ))
            .max()
            .unwrap_or(0);
        let lanes = self
            .metrics
            .keys_held
            .load(std::sync::atomic::Ordering::Relaxed)
            .max(1);
        Yocto(
            per_tx
                .saturating_mul(price)
                .saturating_mul(u128::from(lanes)),
        )
    }

    /// The latest gas price (yocto per gas), if read.
    pub(crate) fn gas_price(&self) -> Option<u128> {
        self.lock().gas_price
    }

    /// Per token seen: the gas per action chosen and the batch size it gives (status page).
    pub(crate) fn gas_report(&self) -> Vec<TokenGas> {
        let s = self.lock();
        let mut out: Vec<TokenGas> = s
            .gas
            .iter()
            .map(|(token, (c, _))| TokenGas {
                token: token.clone(),
                gas_per_action: c.gas_per_action,
                transfers_per_tx: {
                    let l = self.limits.with_gas(c.gas_per_action);
                    self.tiling(&l, c)
                        .map_or(l.transfers_per_tx(), |t| t.transfers_per_tx)
                },
                basis: c.basis,
                samples: c.samples,
                p99_burnt: c.p99_burnt,
            })
            .collect();
        out.sort_by(|a, b| a.token.cmp(&b.token));
        out
    }
    /// `token`'s batches to queue no deeper than that many chunks; `None`: no pacing.
    pub(crate) fn pace_limit(&self, token: &str) -> Option<usize> {
        if self.cfg.pace_blocks == 0 {
            return None;
        }
        let choice = self.gas_for(token);
        let limits = self.limits.with_gas(choice.gas_per_action);
        let t = self.tiling(&limits, &choice)?;
        let n = t.receipts_per_chunk.checked_mul(self.cfg.pace_blocks)?;
        Some(usize::try_from(n).unwrap_or(usize::MAX).max(1))
    }
}
