//! The distributor process: loads the treasury keys, leases as many as it may (renewing the leases), runs one
//! [`Lane`](crate::lane) per leased key, keeps a recent block hash and the guards (balances, caps) fresh, reports
//! its state for the status page, and shuts down gracefully: stop taking claims, finish in-flight work up to a
//! deadline, release the keys.

mod background;
mod start;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use near_primitives::hash::CryptoHash;
use payouts_store::keys::{lease_keys, release_leases, renew_leases};
use payouts_store::status::{
    report_details, report_error, report_heartbeat, report_started, report_stopped,
};
use payouts_store::StoreError;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::keyfile::{KeyFileError, TreasuryKey};
use crate::lane::{Lane, LaneEnd};
use crate::plan::Limits;
use crate::shared::Shared;

/// Why the distributor cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub enum DistributorError {
    /// Bad configuration.
    #[error("{0}")]
    Config(String),
    /// Key files.
    #[error(transparent)]
    Keys(#[from] KeyFileError),
    /// Database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node could not be asked something needed to start.
    #[error("{0}")]
    Rpc(#[from] crate::chain::RpcFailure),
}

/// A distributor process.
pub struct Distributor {
    shared: Arc<Shared>,
    keys: Vec<TreasuryKey>,
    head_tx: watch::Sender<Option<CryptoHash>>,
}

impl Distributor {
    /// This process's lease owner id.
    pub fn owner(&self) -> &str {
        &self.shared.owner
    }

    /// Batch limits in force (with the node's gas cap).
    pub fn limits(&self) -> Limits {
        self.shared.limits
    }

    /// Batch limits for one token (its own gas per transfer, when configured).
    pub fn limits_for(&self, token: &str) -> Limits {
        self.shared.limits_for(token)
    }

    /// Runs until `shutdown` fires, then drains in-flight work (up to `shutdown_grace_ms`) and releases the keys.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), DistributorError> {
        let shared = self.shared.clone();
        let cfg = &shared.cfg;
        {
            let mut conn = shared.conn().await?;
            report_started(&mut conn, &shared.owner).await?;
        }
        tracing::info!(owner = %shared.owner, keys = self.keys.len(), per_tx = shared.limits.transfers_per_tx(), "distributor started");
        let background = CancellationToken::new();
        tokio::spawn(background::follow_head(
            shared.clone(),
            self.head_tx,
            background.clone(),
        ));
        tokio::spawn(background::watch_near_balance(
            shared.clone(),
            background.clone(),
        ));

        let by_pk: HashMap<String, TreasuryKey> = self
            .keys
            .iter()
            .map(|k| (k.public_key.to_string(), k.clone()))
            .collect();
        let held_candidates: Vec<String> = by_pk.keys().cloned().collect();
        let stop = shutdown.child_token();
        let mut lanes: HashMap<String, CancellationToken> = HashMap::new();
        let mut tasks: JoinSet<(String, LaneEnd)> = JoinSet::new();
        let renew_every = Duration::from_millis(cfg.lease_ttl_ms / 3);
        let ttl = i64::try_from(cfg.lease_ttl_ms).unwrap_or(i64::MAX);
        let max_keys = i64::try_from(cfg.max_keys).unwrap_or(i64::MAX);
        loop {
            // Leases: renew what we hold, take what is free (or expired), stop lanes whose lease lapsed.
            match shared.conn().await {
                Ok(mut conn) => {
                    let held: HashSet<String> =
                        match renew_leases(&mut conn, &shared.owner, ttl).await {
                            Ok(h) => h.into_iter().collect(),
                            Err(e) => {
                                shared.report_error(&format!("renewing leases: {e}"));
                                lanes.keys().cloned().collect()
                            }
                        };
                    for (pk, kill) in &lanes {
                        if !held.contains(pk) {
                            tracing::warn!(key = %pk, "lease lapsed: stopping its lane");
                            kill.cancel();
                        }
                    }
                    if lanes.len() < cfg.max_keys {
                        match lease_keys(
                            &mut conn,
                            shared.treasury.as_str(),
                            Some(&held_candidates),
                            &shared.owner,
                            max_keys,
                            ttl,
                        )
                        .await
                        {
                            Ok(leased) => {
                                for k in leased {
                                    if lanes.contains_key(&k.public_key) {
                                        continue;
                                    }
                                    let Some(key) = by_pk.get(&k.public_key) else {
                                        continue;
                                    };
                                    let kill = CancellationToken::new();
                                    lanes.insert(k.public_key.clone(), kill.clone());
                                    let lane = Lane::new(shared.clone(), key.clone());
                                    let (stop, pk) = (stop.clone(), k.public_key.clone());
                                    tasks.spawn(async move { (pk, lane.run(stop, kill).await) });
                                }
                            }
                            Err(e) => shared.report_error(&format!("leasing keys: {e}")),
                        }
                    }
                    let pause = shared.pause_reason();
                    shared.metrics.paused.store(
                        u64::from(pause.is_some()),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    shared
                        .metrics
                        .keys_held
                        .store(lanes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    let _ = report_heartbeat(&mut conn, &shared.owner, pause.as_deref()).await;
                    let _ = report_details(&mut conn, &shared.owner, &shared.details()).await;
                    let last_error = shared.take_last_error();
                    if let Some(e) = last_error {
                        let _ = report_error(&mut conn, &shared.owner, &e).await;
                    }
                }
                Err(e) => shared.report_error(&format!("database: {e}")),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok((pk, end)) = done {
                        tracing::info!(key = %pk, ?end, "lane ended");
                        lanes.remove(&pk);
                    }
                }
                _ = tokio::time::sleep(renew_every) => {}
            }
        }

        // Graceful shutdown: lanes stop taking claims and drain; past the grace period they are stopped.
        tracing::info!(
            in_flight = shared
                .metrics
                .in_flight
                .load(std::sync::atomic::Ordering::Relaxed),
            "draining in-flight transactions"
        );
        let grace = Duration::from_millis(cfg.shutdown_grace_ms);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { break },
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!("grace period over: stopping lanes with work in flight (it resumes on restart)");
                    for kill in lanes.values() {
                        kill.cancel();
                    }
                    while tasks.join_next().await.is_some() {}
                    break;
                }
                // Keep the leases alive while draining.
                _ = tokio::time::sleep(renew_every) => {
                    if let Ok(mut conn) = shared.conn().await {
                        let _ = renew_leases(&mut conn, &shared.owner, ttl).await;
                    }
                }
            }
        }
        background.cancel();
        let mut conn = shared.conn().await?;
        let released = release_leases(&mut conn, &shared.owner).await?;
        report_stopped(&mut conn, &shared.owner).await?;
        tracing::info!(released, "distributor stopped; keys released");
        Ok(())
    }
}
