//! What the lanes of one process share ([`Shared`]): the pool, the node, the configuration and limits, the
//! recent block hash, and the guard state the lanes and the background tasks keep together — the NEAR pause,
//! per-token guard pauses, in-flight counts per lane, congestion back-offs and the last error for the status
//! page. The runner builds it once ([`Shared::new`]) and hands an `Arc` of it to every lane; neither lanes nor
//! the runner are imported from here, so the dependency runs one way (runner → lane → shared).
//!
//! Parts: batch sizing and gas (`sizing`: gas per action, chunk tiling, pacing, the gas reserve), and the
//! cached chain reads the guards and registrations rely on (`reads`: token balances, `storage_balance_of`).

mod reads;
mod sizing;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use near_primitives::hash::CryptoHash;
use near_primitives::types::AccountId;
use payouts_store::{PgPool, PooledConn, StoreError, Yocto};
use tokio::sync::watch;

use crate::chain::{Chain, ProtocolLimits};
use crate::config::DistributorConfig;
use crate::gas::GasChoice;
use crate::guard::TokenBalance;
use crate::metrics::DistributorMetrics;
use crate::plan::Limits;

#[derive(Default)]
struct GuardState {
    near_paused: Option<String>,
    balances: HashMap<String, (TokenBalance, Instant)>,
    blocked: HashMap<String, String>,
    storage_deposit: HashMap<String, Yocto>,
    registered: HashSet<(String, String)>,
    in_flight: HashMap<String, usize>,
    last_error: Option<String>,
    pending_tokens: Option<(Vec<AccountId>, Instant)>,
    /// Per token: the gas per action its next batches attach, and when it was chosen.
    gas: HashMap<String, (GasChoice, Instant)>,
    /// The latest gas price read (yocto per gas, never below the protocol's floor).
    gas_price: Option<u128>,
    /// Lanes backing off after a congestion rejection: key → (the rejection, until when).
    congested: HashMap<String, (String, Instant)>,
}

/// What the lanes of one process share.
pub(crate) struct Shared {
    pub(crate) pool: PgPool,
    pub(crate) chain: Chain,
    pub(crate) cfg: DistributorConfig,
    pub(crate) owner: String,
    pub(crate) limits: Limits,
    /// The node's `transaction_validity_period` (blocks), for the death rule.
    pub(crate) validity_period: u64,
    /// The node's protocol limits (fees for learning gas, gas price floor).
    pub(crate) protocol: ProtocolLimits,
    pub(crate) metrics: Arc<DistributorMetrics>,
    pub(crate) treasury: AccountId,
    head: watch::Receiver<Option<CryptoHash>>,
    state: Mutex<GuardState>,
}

impl Shared {
    /// What the lanes of one process share; it signs nothing before the NEAR balance has been read once
    /// (fail closed: [`crate::guard`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        pool: PgPool,
        chain: Chain,
        cfg: DistributorConfig,
        owner: String,
        limits: Limits,
        protocol: ProtocolLimits,
        metrics: Arc<DistributorMetrics>,
        treasury: AccountId,
        head: watch::Receiver<Option<CryptoHash>>,
    ) -> Self {
        let near_paused = Some(format!("NEAR balance of {treasury} not read yet"));
        Self {
            pool,
            chain,
            cfg,
            owner,
            limits,
            validity_period: protocol.transaction_validity_period,
            protocol,
            metrics,
            treasury,
            head,
            state: Mutex::new(GuardState {
                near_paused,
                ..GuardState::default()
            }),
        }
    }

    /// Marks the lane of `pk` as backing off after a congestion rejection (`None`: no longer).
    pub(crate) fn set_congested(&self, pk: &str, state: Option<(String, Instant)>) {
        let mut s = self.lock();
        match state {
            Some(v) => s.congested.insert(pk.to_string(), v),
            None => s.congested.remove(pk),
        };
        let n = s.congested.len() as u64;
        self.metrics
            .lanes_congested
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Lanes backing off after congestion, for the status page.
    pub(crate) fn congestion_report(&self) -> Vec<LaneCongestion> {
        let s = self.lock();
        let now = Instant::now();
        let mut out: Vec<LaneCongestion> = s
            .congested
            .iter()
            .map(|(pk, (error, until))| LaneCongestion {
                public_key: pk.clone(),
                error: error.clone(),
                resumes_in_ms: until.saturating_duration_since(now).as_millis() as u64,
            })
            .collect();
        out.sort_by(|a, b| a.public_key.cmp(&b.public_key));
        out
    }

    pub(crate) async fn conn(&self) -> Result<PooledConn, StoreError> {
        payouts_store::get(&self.pool).await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GuardState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn report_error(&self, error: &str) {
        // An endpoint's URL or key must never reach a log line or the status page.
        let error = self.chain.pool().scrub(error);
        tracing::warn!(%error, "distributor error");
        self.lock().last_error = Some(error);
    }

    /// What the status page shows of this process beyond its pause reason ([`report_details`]).
    pub(crate) fn details(&self) -> serde_json::Value {
        serde_json::json!({
            "rpc_endpoints": self.chain.pool().snapshot(),
            "gas": self.gas_report(),
            "congestion": self.congestion_report(),
            "gas_price": self.gas_price().map(|p| p.to_string()),
            "min_gas_price": self.protocol.min_gas_price.to_string(),
            "gas_reserve": self.gas_reserve().to_string(),
        })
    }

    /// Token contracts with pending claims, asked of the database at most every poll interval for all lanes
    /// together, parsed once here ([`crate::accounts`]). One that is not an account id is reported and its
    /// token paused (nothing of it is signed), never skipped silently.
    pub(crate) async fn pending_tokens(&self) -> Result<Vec<AccountId>, StoreError> {
        let fresh = Duration::from_millis(self.cfg.poll_interval_ms);
        let cached = self.lock().pending_tokens.clone();
        if let Some((tokens, at)) = cached {
            if at.elapsed() < fresh {
                return Ok(tokens);
            }
        }
        let mut conn = self.conn().await?;
        let (tokens, bad) = crate::accounts::parse_accounts(
            payouts_store::claims::pending_tokens(&mut conn).await?,
        );
        for b in bad {
            tracing::warn!(token = %b.value, reason = %b.reason, "pending claims name a token contract that is not an account id; not signing for it");
            let why = format!(
                "token contract `{}` is not an account id ({}): nothing of it is signed",
                b.value, b.reason
            );
            self.set_blocked(&b.value, &why);
        }
        self.lock().pending_tokens = Some((tokens.clone(), Instant::now()));
        Ok(tokens)
    }

    pub(crate) fn recent_block(&self) -> Option<CryptoHash> {
        *self.head.borrow()
    }

    pub(crate) fn near_paused(&self) -> Option<String> {
        self.lock().near_paused.clone()
    }

    /// Pacing (`pace_blocks`, [`crate::tile`]): how many transactions this process may have in flight for
    /// Transactions in flight in this process's lanes other than `pk`'s.
    pub(crate) fn in_flight_except(&self, pk: &str) -> usize {
        let s = self.lock();
        s.in_flight
            .iter()
            .filter(|(k, _)| k.as_str() != pk)
            .map(|(_, n)| *n)
            .sum()
    }

    pub(crate) fn set_lane_in_flight(&self, pk: &str, n: usize) {
        let mut s = self.lock();
        s.in_flight.insert(pk.to_string(), n);
        let total: usize = s.in_flight.values().sum();
        self.metrics
            .in_flight
            .store(total as u64, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn set_blocked(&self, token: &str, reason: &str) {
        let mut s = self.lock();
        if s.blocked.get(token).map(String::as_str) != Some(reason) {
            tracing::warn!(token, reason, "payouts of a token paused by a guard");
            s.blocked.insert(token.to_string(), reason.to_string());
        }
    }

    pub(crate) fn clear_blocked(&self, token: &str) {
        self.lock().blocked.remove(token);
    }

    /// Why sending is paused, if it is (NEAR balance, or a token's guard).
    pub(crate) fn pause_reason(&self) -> Option<String> {
        let s = self.lock();
        let mut reasons: Vec<String> = s.near_paused.iter().cloned().collect();
        reasons.extend(s.blocked.values().cloned());
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// The treasury's balance of `token` (asked at most every second), or why it is unknown: nothing may be
    /// signed for the token then ([`crate::guard`]: fail closed). A failed read falls back on the last answer
    /// The last error reported since the previous call (for the status row).
    pub(crate) fn take_last_error(&self) -> Option<String> {
        self.lock().last_error.take()
    }

    /// Records the latest gas price read (already raised to the protocol's floor).
    pub(crate) fn set_gas_price(&self, price: u128) {
        self.lock().gas_price = Some(price);
        self.metrics.gas_price.set(price);
    }

    /// Sets (or clears, `None`) the NEAR balance pause, logging a new reason.
    pub(crate) fn set_near_paused(&self, reason: Option<String>) {
        let mut s = self.lock();
        if reason.is_some() && s.near_paused != reason {
            tracing::warn!(
                reason = reason.as_deref().unwrap_or(""),
                "paused: NEAR balance guard"
            );
        }
        s.near_paused = reason;
    }
}

/// A lane backing off after `ShardCongested` / `ShardStuck` (status page).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LaneCongestion {
    /// The lane's key.
    pub public_key: String,
    /// The rejection.
    pub error: String,
    /// When it takes new batches again.
    pub resumes_in_ms: u64,
}
