//! The runner's background tasks, which keep the [`Shared`] state fresh for every lane: a recent final block
//! hash for new transactions, the gas price, and the NEAR balance guard (pause while the treasury is below its
//! minimum plus one round of gas, or while its balance is unknown).

use std::sync::Arc;
use std::time::{Duration, Instant};

use near_primitives::hash::CryptoHash;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use payouts_store::Yocto;

use crate::guard::BALANCE_MAX_AGE;
use crate::shared::Shared;

/// Keeps a recent final block hash for new transactions.
pub(super) async fn follow_head(
    shared: Arc<Shared>,
    head: watch::Sender<Option<CryptoHash>>,
    stop: CancellationToken,
) {
    loop {
        match shared.chain.final_block().await {
            Ok((_, hash)) => {
                let _ = head.send(Some(hash));
            }
            Err(e) => {
                crate::metrics::add(&shared.metrics.rpc_errors, 1);
                tracing::debug!(error = %e, "reading the chain head failed");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// Pauses sending while the treasury's NEAR balance is below the configured minimum, or unknown: not read
/// yet, or no answer for [`BALANCE_MAX_AGE`] (fail closed, see [`crate::guard`]).
pub(super) async fn watch_near_balance(shared: Arc<Shared>, stop: CancellationToken) {
    let mut last_read: Option<Instant> = None;
    loop {
        if let Ok(price) = shared.chain.gas_price().await {
            // The protocol's floor (min_gas_price) bounds it from below whatever a node answers.
            let price = price.max(shared.protocol.min_gas_price);
            shared.set_gas_price(price);
        }
        let reason = match shared.chain.near_balance(&shared.treasury).await {
            Ok(b) => {
                last_read = Some(Instant::now());
                let min = shared.cfg.min_near_balance;
                let reserve = shared.gas_reserve();
                let need = Yocto(min.0.saturating_add(reserve.0));
                (b < need).then(|| {
                    format!(
                        "NEAR balance of {} too low: {b} yocto, minimum {min} + {reserve} for one round of gas at the current price",
                        shared.treasury
                    )
                })
            }
            Err(e) => {
                crate::metrics::add(&shared.metrics.rpc_errors, 1);
                tracing::debug!(error = %e, "reading the NEAR balance failed");
                match last_read {
                    Some(at) if at.elapsed() < BALANCE_MAX_AGE => shared.near_paused(),
                    _ => Some(format!(
                        "NEAR balance of {} unknown (not signing): {e}",
                        shared.treasury
                    )),
                }
            }
        };
        shared.set_near_paused(reason);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
