//! The distributor process: loads the treasury keys, leases as many as it may (renewing the leases), runs one
//! [`Lane`](crate::lane) per leased key, keeps a recent block hash and the guards (balances, caps) fresh, reports
//! its state for the status page, and shuts down gracefully: stop taking claims, finish in-flight work up to a
//! deadline, release the keys.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use near_primitives::hash::CryptoHash;
use near_primitives::types::AccountId;
use payouts_store::keys::{lease_keys, register_keys, release_leases, renew_leases};
use payouts_store::status::{
    report_details, report_error, report_heartbeat, report_started, report_stopped,
};
use payouts_store::{PgPool, PooledConn, StoreError};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::chain::{Chain, ProtocolLimits};
use crate::config::DistributorConfig;
use crate::gas::{GasChoice, TokenGas};
use crate::guard::{TokenBalance, BALANCE_MAX_AGE};
use crate::keyfile::{load_keys, KeyFileError, TreasuryKey};
use crate::lane::{Lane, LaneEnd};
use crate::metrics::DistributorMetrics;
use crate::plan::Limits;
use crate::rpc::{RpcEndpointConfig, RpcPool};
use crate::tx::Registrations;

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

#[derive(Default)]
struct GuardState {
    near_paused: Option<String>,
    balances: HashMap<String, (TokenBalance, Instant)>,
    blocked: HashMap<String, String>,
    storage_deposit: HashMap<String, u128>,
    registered: HashSet<(String, String)>,
    in_flight: HashMap<String, usize>,
    last_error: Option<String>,
    pending_tokens: Option<(Vec<String>, Instant)>,
    /// Per token: the gas per action its next batches attach, and when it was chosen.
    gas: HashMap<String, (GasChoice, Instant)>,
    /// The latest gas price read (yocto per gas, never below the protocol's floor).
    gas_price: Option<u128>,
    /// Lanes backing off after a congestion rejection: key → (the rejection, until when).
    congested: HashMap<String, (String, Instant)>,
}

/// How often a token's gas per action is chosen again from its recent outcomes.
const GAS_REFRESH: Duration = Duration::from_millis(500);

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
    treasury: AccountId,
    head: watch::Receiver<Option<CryptoHash>>,
    state: Mutex<GuardState>,
}

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
    pub(crate) fn gas_reserve(&self) -> u128 {
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
        per_tx
            .saturating_mul(price)
            .saturating_mul(u128::from(lanes))
    }

    /// The latest gas price (yocto per gas), if read.
    pub(crate) fn gas_price(&self) -> Option<u128> {
        self.lock().gas_price
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

    /// Tokens with pending claims, asked of the database at most every poll interval for all lanes together.
    pub(crate) async fn pending_tokens(&self) -> Result<Vec<String>, StoreError> {
        let fresh = Duration::from_millis(self.cfg.poll_interval_ms);
        let cached = self.lock().pending_tokens.clone();
        if let Some((tokens, at)) = cached {
            if at.elapsed() < fresh {
                return Ok(tokens);
            }
        }
        let mut conn = self.conn().await?;
        let tokens = payouts_store::claims::pending_tokens(&mut conn).await?;
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
    /// only while it is younger than [`BALANCE_MAX_AGE`].
    pub(crate) async fn token_balance(&self, token: &str) -> Result<TokenBalance, String> {
        let cached = self.lock().balances.get(token).copied();
        if let Some((b, at)) = cached {
            if at.elapsed() < Duration::from_secs(1) {
                return Ok(b);
            }
        }
        let contract = token
            .parse::<AccountId>()
            .map_err(|_| format!("balance of {token} unknown: not an account id"))?;
        let read_at = chrono::Utc::now();
        match self.chain.ft_balance(&contract, &self.treasury).await {
            Ok(amount) => {
                let b = TokenBalance { amount, read_at };
                self.lock()
                    .balances
                    .insert(token.to_string(), (b, Instant::now()));
                Ok(b)
            }
            Err(e) => {
                crate::metrics::add(&self.metrics.rpc_errors, 1);
                match cached {
                    Some((b, at)) if at.elapsed() < BALANCE_MAX_AGE => {
                        tracing::debug!(error = %e, token, "token balance read failed; using the last one");
                        Ok(b)
                    }
                    _ => Err(format!(
                        "balance of {token} unknown (not signing for it): {e}"
                    )),
                }
            }
        }
    }

    /// Of `receivers`, those not known to be registered with `token` (asked with `storage_balance_of`;
    /// registered ones are cached for good).
    pub(crate) async fn unregistered(&self, token: &str, receivers: Vec<String>) -> Registrations {
        let Ok(contract) = token.parse::<AccountId>() else {
            return Registrations::default();
        };
        let known = self.lock().storage_deposit.get(token).copied();
        let deposit = match known {
            Some(d) => d,
            None => {
                #[derive(serde::Deserialize)]
                struct Bounds {
                    min: String,
                }
                match self
                    .chain
                    .view::<Bounds>(&contract, "storage_balance_bounds", serde_json::json!({}))
                    .await
                    .ok()
                    .and_then(|b| b.min.parse::<u128>().ok())
                {
                    Some(d) => {
                        self.lock().storage_deposit.insert(token.to_string(), d);
                        d
                    }
                    None => return Registrations::default(),
                }
            }
        };
        let mut out = Registrations {
            deposit,
            ..Default::default()
        };
        let unknown: Vec<String> = {
            let s = self.lock();
            let mut seen = HashSet::new();
            receivers
                .into_iter()
                .filter(|r| !s.registered.contains(&(token.to_string(), r.clone())))
                .filter(|r| seen.insert(r.clone()))
                .collect()
        };
        let checks = unknown.iter().map(|r| {
            let contract = contract.clone();
            async move {
                let v: Result<Option<serde_json::Value>, _> = self
                    .chain
                    .view(
                        &contract,
                        "storage_balance_of",
                        serde_json::json!({ "account_id": r }),
                    )
                    .await;
                (r.clone(), v)
            }
        });
        for (receiver, answer) in futures_util::future::join_all(checks).await {
            match answer {
                Ok(Some(_)) => {
                    self.lock().registered.insert((token.to_string(), receiver));
                }
                // Not registered, or unknown: registering an account twice only refunds the deposit.
                Ok(None) | Err(_) => {
                    out.receivers.insert(receiver);
                }
            }
        }
        out
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

/// A distributor process.
pub struct Distributor {
    shared: Arc<Shared>,
    keys: Vec<TreasuryKey>,
    head_tx: watch::Sender<Option<CryptoHash>>,
}

impl Distributor {
    /// [`Distributor::with_endpoints`] with one endpoint at `rpc_url`.
    pub async fn new(
        pool: PgPool,
        cfg: DistributorConfig,
        rpc_url: &str,
        metrics: Arc<DistributorMetrics>,
    ) -> Result<Self, DistributorError> {
        Self::with_endpoints(pool, cfg, &[RpcEndpointConfig::new(rpc_url)], metrics).await
    }

    /// Loads the keys, registers them in the key pool, and reads the node's gas cap, over the RPC endpoint
    /// pool `endpoints` ([`crate::rpc`]).
    pub async fn with_endpoints(
        pool: PgPool,
        cfg: DistributorConfig,
        endpoints: &[RpcEndpointConfig],
        metrics: Arc<DistributorMetrics>,
    ) -> Result<Self, DistributorError> {
        cfg.validate().map_err(DistributorError::Config)?;
        let keys = load_keys(&cfg.key_files, cfg.keys_env.as_deref())?;
        let treasury = keys[0].account_id.clone();
        let rpc =
            Arc::new(RpcPool::new(endpoints).map_err(|e| DistributorError::Config(e.to_string()))?);
        metrics.set_rpc(rpc.clone());
        let chain = Chain::with_pool(rpc, Duration::from_millis(cfg.rpc_timeout_ms));
        let protocol = chain.protocol_limits().await?;
        let max_tx_gas = protocol.max_tx_gas;
        let limits = Limits {
            max_transfers_per_tx: cfg.max_transfers_per_tx,
            gas_per_transfer: cfg.gas_per_transfer(),
            max_tx_gas,
        };
        if limits.transfers_per_tx() == 0 {
            return Err(DistributorError::Config(format!(
                "distributor.gas_per_transfer_tgas: {} Tgas does not fit the node's {} Tgas per transaction",
                cfg.gas_per_transfer_tgas,
                max_tx_gas / crate::config::TGAS
            )));
        }
        for (token, tgas) in &cfg.gas_per_transfer_tgas_by_token {
            if limits
                .with_gas(cfg.gas_per_transfer_for(token))
                .transfers_per_tx()
                == 0
            {
                return Err(DistributorError::Config(format!(
                    "distributor.gas_per_transfer_tgas_by_token.{token}: {tgas} Tgas does not fit the node's {} Tgas per transaction",
                    max_tx_gas / crate::config::TGAS
                )));
            }
        }
        let pks: Vec<String> = keys.iter().map(|k| k.public_key.to_string()).collect();
        {
            let mut conn = payouts_store::get(&pool).await?;
            register_keys(&mut conn, treasury.as_str(), &pks).await?;
        }
        let owner = cfg
            .instance_id
            .clone()
            .unwrap_or_else(|| payouts_store::owner::process_owner("distributor"));
        let (head_tx, head) = watch::channel(None);
        let shared = Arc::new(Shared {
            pool,
            chain,
            cfg,
            owner,
            limits,
            validity_period: protocol.transaction_validity_period,
            protocol,
            metrics,
            treasury: treasury.clone(),
            head,
            // Fail closed: no lane signs before the NEAR balance has been read once.
            state: Mutex::new(GuardState {
                near_paused: Some(format!("NEAR balance of {treasury} not read yet")),
                ..GuardState::default()
            }),
        });
        Ok(Self {
            shared,
            keys,
            head_tx,
        })
    }

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
        tokio::spawn(follow_head(
            shared.clone(),
            self.head_tx,
            background.clone(),
        ));
        tokio::spawn(watch_near_balance(shared.clone(), background.clone()));

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
                    let last_error = shared.lock().last_error.take();
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

/// Keeps a recent final block hash for new transactions.
async fn follow_head(
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
async fn watch_near_balance(shared: Arc<Shared>, stop: CancellationToken) {
    let mut last_read: Option<Instant> = None;
    loop {
        if let Ok(price) = shared.chain.gas_price().await {
            // The protocol's floor (min_gas_price) bounds it from below whatever a node answers.
            let price = price.max(shared.protocol.min_gas_price);
            shared.lock().gas_price = Some(price);
            shared.metrics.gas_price.set(price);
        }
        let reason = match shared.chain.near_balance(&shared.treasury).await {
            Ok(b) => {
                last_read = Some(Instant::now());
                let min = shared.cfg.min_near_balance;
                let reserve = shared.gas_reserve();
                let need = min.saturating_add(reserve);
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
        {
            let mut s = shared.lock();
            if reason.is_some() && s.near_paused != reason {
                tracing::warn!(
                    reason = reason.as_deref().unwrap_or(""),
                    "paused: NEAR balance guard"
                );
            }
            s.near_paused = reason;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
