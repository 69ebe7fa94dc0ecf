//! Cutting new batches: while the lane has room in flight, the NEAR guard allows signing, no congestion
//! back-off holds it and pacing leaves room, it asks the token's guards (balance: fail closed when unknown;
//! daily cap; registrations) and has [`crate::prepare`] store the next batch before it is broadcast.

use std::time::Duration;

use near_primitives::types::AccountId;
use payouts_store::claims::peek_pending_receivers;
use tokio::time::Instant;

use crate::metrics::add;
use crate::prepare::{prepare, BatchOptions, LaneState, PrepareError, Prepared};
use crate::tx::Registrations;

use super::flight::{Asking, InFlight, Known};
use super::Lane;

impl Lane {
    /// Cuts new batches while there is room in flight and work to do.
    pub(super) async fn fill(&mut self) -> Result<(), PrepareError> {
        let max = self.shared.cfg.max_in_flight_per_key;
        if self.flight.len() >= max || self.shared.near_paused().is_some() {
            return Ok(());
        }
        if let Some(until) = self.congested_until {
            if Instant::now() < until {
                return Ok(());
            }
            self.congested_until = None;
            self.shared.set_congested(&self.pk, None);
        }
        let Some(block_hash) = self.shared.recent_block() else {
            return Ok(());
        };
        let tokens = self.shared.pending_tokens().await?;
        let mut sent = Vec::new();
        for contract in &tokens {
            let token = contract.as_str();
            if self.blocked.get(token).is_some_and(|t| *t > Instant::now()) {
                continue;
            }
            while self.flight.len() < max {
                // Pacing: no deeper a queue in the chain than it executes in `pace_blocks` chunks; the rest
                // waits as pending claims (which coalescing can still merge).
                if let Some(cap) = self.shared.pace_limit(token) {
                    if self.shared.in_flight_except(&self.pk) + self.flight.len() >= cap {
                        break;
                    }
                }
                let opts = match self.options(contract).await? {
                    Ok(opts) => opts,
                    Err(unknown) => {
                        // Fail closed: no balance (or no storage deposit), no signing for this token.
                        add(&self.shared.metrics.balance_unknown, 1);
                        self.shared.set_blocked(token, &unknown);
                        self.blocked
                            .insert(token.to_string(), Instant::now() + Duration::from_secs(1));
                        break;
                    }
                };
                let lane = LaneState {
                    nonce: self.next_nonce,
                    block_hash,
                };
                self.shared.refresh_gas(token).await;
                let mut conn = self.shared.conn().await?;
                let limits = self.shared.limits_for(token);
                let owner = self.shared.owner.clone();
                let out =
                    prepare(&mut conn, &owner, &self.key, token, lane, &limits, &opts).await?;
                drop(conn);
                match out {
                    Prepared::Batch(b) => {
                        let m = &self.shared.metrics;
                        add(&m.batches, 1);
                        add(&m.transfers, b.transfers as u64);
                        add(&m.unpayable, b.unpayable as u64);
                        self.shared.clear_blocked(token);
                        self.next_nonce += 1;
                        sent.push(b.batch.signed.clone());
                        let mut f = InFlight::new(b.batch.signed, Known::Signed);
                        f.asking = Asking::Sending;
                        self.flight.insert(b.batch.nonce, f);
                    }
                    Prepared::Idle | Prepared::Wait(_) => break,
                    Prepared::Blocked(reason) => {
                        self.shared.set_blocked(token, &reason);
                        self.blocked
                            .insert(token.to_string(), Instant::now() + Duration::from_secs(1));
                        break;
                    }
                }
            }
        }
        if !sent.is_empty() {
            self.send_in_order(sent);
        }
        Ok(())
    }

    /// Guards and registrations for the next batch of `contract`'s token; `Ok(Err(why))` when its balance
    /// or its storage deposit is unknown (fail closed: nothing is signed for it then).
    async fn options(
        &self,
        contract: &AccountId,
    ) -> Result<Result<BatchOptions, String>, PrepareError> {
        let cfg = &self.shared.cfg;
        let token = contract.as_str();
        let balance = match self.shared.token_balance(contract).await {
            Ok(b) => b,
            Err(why) => return Ok(Err(why)),
        };
        let registrations = if cfg.register_receivers {
            let receivers = {
                let mut conn = self.shared.conn().await?;
                let n =
                    i64::try_from(self.shared.limits_for(token).transfers_per_tx()).unwrap_or(100);
                peek_pending_receivers(&mut conn, token, n).await?
            };
            match self.shared.unregistered(contract, receivers).await {
                Ok(r) => r,
                Err(why) => return Ok(Err(why)),
            }
        } else {
            Registrations::default()
        };
        Ok(Ok(BatchOptions {
            max_wait: Duration::from_millis(cfg.max_batch_wait_ms),
            balance: Some(balance),
            daily_cap: cfg.daily_caps.get(token).copied(),
            registrations,
            register_receivers: cfg.register_receivers,
            coalesce: cfg.coalesce,
            // Every transaction of this lane is in a block already: a batch cut now goes in the next chunk
            // with nothing of ours queued before it, so a partial one is not held back to fill up.
            idle: self.flight.values().all(|f| f.known >= Known::Submitted),
        }))
    }
}
