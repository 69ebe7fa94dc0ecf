//! One nonce lane: one leased key, its transactions in flight, in strict nonce order.
//!
//! The lane cuts batches ([`crate::prepare`]: stored and claims `submitted` in one DB transaction *before*
//! anything is sent), hands them to the node in nonce order, re-broadcasts the same bytes when an answer is
//! missing, and lets a transaction go only when it is settled (by the indexer's reconciliation, or by a `tx`
//! lookup after `outcome_timeout`) or proven dead by the indexed chain ([`crate::death`]), in which case its
//! claims go back to `pending`. Rejections, timeouts and `UNKNOWN_TRANSACTION` are never a verdict: they make
//! the lane re-broadcast the same bytes with back-off and ask the indexed chain for a proof.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use near_primitives::errors::InvalidTxError;
use near_primitives::hash::CryptoHash;
use near_primitives::transaction::SignedTransaction;
use payouts_store::claims::peek_pending_receivers;
use payouts_store::incidents::record_nonce_ahead;
use payouts_store::keys::list_keys;
use payouts_store::reconcile::{settle, Settlement};
use payouts_store::transactions::{bury, get_tx, mark_submitted, tx_statuses, unsettled_of_key};
use payouts_store::{StoreError, TxStatus};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::chain::{Lookup, RpcFailure, Sent};
use crate::death::{self, Verdict};
use crate::keyfile::TreasuryKey;
use crate::metrics::add;
use crate::prepare::{prepare, BatchOptions, LaneState, PrepareError, Prepared};
use crate::shared::Shared;
use crate::tx::Registrations;

/// Why a lane ended.
#[derive(Debug)]
pub(crate) enum LaneEnd {
    /// Stopped and drained (or told to stop at once).
    Done,
    /// The key's lease was lost: another process may hold it now.
    LeaseLost,
}

struct InFlight {
    tx: SignedTransaction,
    hash: CryptoHash,
    stored_at: Instant,
    last_sent: Option<Instant>,
    last_lookup: Option<Instant>,
    sending: bool,
    looking: bool,
    submitted: bool,
    included: bool,
    /// Answers that put it in doubt (rejections, "unknown"): each doubles the re-broadcast interval.
    doubts: u32,
    /// A death proof is being gathered.
    proving: bool,
    /// When the next death proof may be tried.
    next_proof: Option<Instant>,
}

impl InFlight {
    fn new(tx: SignedTransaction, submitted: bool) -> Self {
        Self {
            hash: tx.get_hash(),
            tx,
            stored_at: Instant::now(),
            last_sent: None,
            last_lookup: None,
            sending: false,
            looking: false,
            submitted,
            included: false,
            doubts: 0,
            proving: false,
            next_proof: None,
        }
    }

    /// The wait before the next re-broadcast: `base` doubled per doubt, capped, with up to 25 % jitter so
    /// lanes that were rejected together do not come back together.
    fn backoff(&self, base: Duration, cap: Duration) -> Duration {
        let factor = 1u32 << self.doubts.min(10);
        let d = base.saturating_mul(factor).min(cap.max(base));
        if self.doubts == 0 {
            return d;
        }
        let jitter = rand::random::<u32>() % 256;
        d + d.mul_f64(f64::from(jitter) / 1024.0)
    }
}

enum Event {
    Sent(CryptoHash, Instant, Result<Sent, RpcFailure>),
    Looked(CryptoHash, Result<Lookup, RpcFailure>),
    Proved(CryptoHash, Verdict),
}

pub(crate) struct Lane {
    shared: Arc<Shared>,
    key: TreasuryKey,
    pk: String,
    next_nonce: u64,
    flight: BTreeMap<u64, InFlight>,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    /// Tokens held back by a guard, until when.
    blocked: HashMap<String, Instant>,
    /// After `ShardCongested` / `ShardStuck`: no new batch before this (the same bytes are re-broadcast
    /// with their own back-off; nothing fails).
    congested_until: Option<Instant>,
    /// Congestion rejections in a row (each doubles the pause), reset by an accepted submission.
    congestion_streak: u32,
}

/// The lane's pause after its `n`-th congestion rejection in a row: 500 ms doubled per rejection, at most
/// `cap`, with up to 50 % jitter so lanes rejected together do not come back together.
fn congestion_pause(n: u32, cap: Duration) -> Duration {
    let base = Duration::from_millis(500);
    let d = base
        .saturating_mul(1u32 << n.saturating_sub(1).min(10))
        .min(cap.max(base));
    d + d.mul_f64(f64::from(rand::random::<u32>() % 512) / 1024.0)
}

fn decode(bytes: &[u8]) -> Result<SignedTransaction, StoreError> {
    borsh::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("stored transaction: {e}")))
}

impl Lane {
    pub(crate) fn new(shared: Arc<Shared>, key: TreasuryKey) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        let pk = key.public_key.to_string();
        Self {
            shared,
            key,
            pk,
            next_nonce: 0,
            flight: BTreeMap::new(),
            events_tx,
            events,
            blocked: HashMap::new(),
            congested_until: None,
            congestion_streak: 0,
        }
    }

    /// Runs until `kill`, or until `stop` and nothing is in flight any more.
    pub(crate) async fn run(mut self, stop: CancellationToken, kill: CancellationToken) -> LaneEnd {
        let tick = Duration::from_millis(self.shared.cfg.poll_interval_ms);
        // Start: what earlier holders of this key left in flight, and the nonce to go on from.
        loop {
            match self.start().await {
                Ok(()) => break,
                Err(e) => {
                    self.shared.report_error(&format!("lane {}: {e}", self.pk));
                    tokio::select! {
                        _ = kill.cancelled() => return LaneEnd::Done,
                        _ = tokio::time::sleep(tick * 10) => {}
                    }
                }
            }
        }
        tracing::info!(key = %self.pk, next_nonce = self.next_nonce, in_flight = self.flight.len(), "lane started");
        loop {
            if kill.is_cancelled() {
                break;
            }
            if let Err(e) = self.step(stop.is_cancelled()).await {
                if matches!(e, PrepareError::Store(StoreError::LeaseLost { .. })) {
                    tracing::warn!(key = %self.pk, "lease lost: lane stops");
                    return LaneEnd::LeaseLost;
                }
                self.shared.report_error(&format!("lane {}: {e}", self.pk));
            }
            self.shared.set_lane_in_flight(&self.pk, self.flight.len());
            if stop.is_cancelled() && self.flight.is_empty() {
                break;
            }
            tokio::select! {
                _ = kill.cancelled() => break,
                Some(ev) = self.events.recv() => self.handle(ev).await,
                _ = tokio::time::sleep(tick) => {}
            }
            while let Ok(ev) = self.events.try_recv() {
                self.handle(ev).await;
            }
        }
        self.shared.set_lane_in_flight(&self.pk, 0);
        LaneEnd::Done
    }

    async fn start(&mut self) -> Result<(), PrepareError> {
        let mut conn = self.shared.conn().await?;
        for stored in unsettled_of_key(&mut conn, &self.pk).await? {
            let tx = decode(&stored.signed_bytes)?;
            // (What it pays stays counted by the guards: they read the store, see crate::guard.)
            let submitted = stored.status == TxStatus::Submitted;
            self.flight
                .insert(stored.nonce as u64, InFlight::new(tx, submitted));
        }
        let stored_nonce = list_keys(&mut conn)
            .await?
            .into_iter()
            .find(|k| k.public_key == self.pk)
            .and_then(|k| k.last_nonce)
            .map(|n| n.max(0) as u64);
        let db_nonce = stored_nonce.unwrap_or(0);
        drop(conn);
        let chain_nonce = self
            .shared
            .chain
            .access_key_nonce(&self.key.account_id, &self.key.public_key)
            .await
            .map_err(|e| StoreError::Corrupt(e.to_string()))?
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "key {} is not an access key of {} on chain",
                    self.pk, self.key.account_id
                ))
            })?;
        // The store holds the nonce of every transaction signed with this key before it is broadcast, and
        // the key is leased to us now (an earlier holder's writes are fenced on its lease), so the chain can
        // be ahead only if something else signs with our key: an incident, which pauses every token.
        if let Some(stored) = stored_nonce.filter(|s| chain_nonce > *s) {
            let mut conn = self.shared.conn().await?;
            let new = record_nonce_ahead(
                &mut conn,
                self.key.account_id.as_str(),
                &self.pk,
                stored,
                chain_nonce,
            )
            .await?;
            tracing::error!(key = %self.pk, stored, chain_nonce, new, "incident: the key's chain nonce is ahead of the store; every token paused");
        }
        let last_flight = self.flight.keys().next_back().copied().unwrap_or(0);
        self.next_nonce = chain_nonce.max(db_nonce).max(last_flight) + 1;
        Ok(())
    }

    /// One round: settle what the store says is settled, (re-)send what needs it, then cut new batches.
    async fn step(&mut self, stopping: bool) -> Result<(), PrepareError> {
        self.refresh().await?;
        self.resend();
        if !stopping {
            self.fill().await?;
        }
        Ok(())
    }

    /// Drops transactions the store shows settled (by the indexer, or by us).
    async fn refresh(&mut self) -> Result<(), PrepareError> {
        if self.flight.is_empty() {
            return Ok(());
        }
        let hashes: Vec<String> = self.flight.values().map(|f| f.hash.to_string()).collect();
        let mut conn = self.shared.conn().await?;
        let states: HashMap<String, TxStatus> =
            tx_statuses(&mut conn, &hashes).await?.into_iter().collect();
        drop(conn);
        let metrics = &self.shared.metrics;
        self.flight
            .retain(|_, f| match states.get(&f.hash.to_string()) {
                Some(TxStatus::Included) => {
                    f.included = true;
                    true
                }
                Some(TxStatus::Final | TxStatus::Failed | TxStatus::Dropped) | None => {
                    metrics.settle_latency.observe(f.stored_at.elapsed());
                    false
                }
                Some(TxStatus::Signed | TxStatus::Submitted) => true,
            });
        Ok(())
    }

    /// Re-broadcasts (same bytes, nonce order, backing off while in doubt) what got no answer in time; asks
    /// the node about what the stream has not settled after `outcome_timeout`; asks the indexed chain for a
    /// death proof of what is in doubt or overdue.
    fn resend(&mut self) {
        let cfg = &self.shared.cfg;
        let again = Duration::from_millis(cfg.rebroadcast_after_ms);
        let cap = Duration::from_millis(cfg.max_rebroadcast_backoff_ms);
        let overdue = Duration::from_millis(cfg.outcome_timeout_ms);
        let now = Instant::now();
        let mut to_send = Vec::new();
        let mut to_look = Vec::new();
        let mut to_prove = Vec::new();
        for f in self.flight.values_mut() {
            let late = f.stored_at.elapsed() >= overdue;
            if !f.included
                && !f.proving
                && (f.doubts > 0 || late)
                && f.next_proof.is_none_or(|t| now >= t)
            {
                f.proving = true;
                to_prove.push(f.tx.clone());
            }
            if f.sending || f.looking {
                continue;
            }
            let due = f
                .last_sent
                .is_none_or(|t| t.elapsed() >= f.backoff(again, cap));
            if !f.included && due {
                f.sending = true;
                to_send.push(f.tx.clone());
            } else if late && f.last_lookup.is_none_or(|t| t.elapsed() >= again) {
                f.looking = true;
                f.last_lookup = Some(now);
                to_look.push(f.hash);
            }
        }
        if !to_send.is_empty() {
            add(&self.shared.metrics.rebroadcasts, to_send.len() as u64);
            self.send_in_order(to_send);
        }
        for hash in to_look {
            self.look(hash);
        }
        for tx in to_prove {
            self.prove(tx);
        }
    }

    /// Gathers a death proof for `tx` from the indexed chain ([`crate::death`]).
    fn prove(&self, tx: SignedTransaction) {
        let shared = self.shared.clone();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let verdict = match shared.conn().await {
                Ok(mut conn) => {
                    death::prove(
                        &mut conn,
                        &shared.chain,
                        shared.cfg.indexer_stream(),
                        shared.validity_period,
                        &tx,
                    )
                    .await
                }
                Err(e) => Verdict::NotYet(format!("database: {e}")),
            };
            let _ = events.send(Event::Proved(tx.get_hash(), verdict));
        });
    }

    /// Hands transactions to the node in the given (nonce) order, then waits for each to be included.
    fn send_in_order(&mut self, txs: Vec<SignedTransaction>) {
        let now = Instant::now();
        for tx in &txs {
            if let Some(f) = self.flight.get_mut(&tx.transaction.nonce()) {
                f.last_sent = Some(now);
            }
        }
        let chain = self.shared.chain.clone();
        let events = self.events_tx.clone();
        let metrics = self.shared.metrics.clone();
        tokio::spawn(async move {
            // The async hand-over is quick and sequential: the node sees the nonces in order.
            for tx in &txs {
                if chain.submit_async(tx).await.is_err() {
                    add(&metrics.rpc_errors, 1);
                }
            }
            for tx in txs {
                let chain = chain.clone();
                let events = events.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let r = chain.send_included(&tx).await;
                    let _ = events.send(Event::Sent(tx.get_hash(), started, r));
                });
            }
        });
    }

    fn look(&self, hash: CryptoHash) {
        let chain = self.shared.chain.clone();
        let events = self.events_tx.clone();
        let signer = self.key.account_id.clone();
        tokio::spawn(async move {
            let r = chain.lookup(hash, &signer).await;
            let _ = events.send(Event::Looked(hash, r));
        });
    }

    fn find(&mut self, hash: &CryptoHash) -> Option<(u64, &mut InFlight)> {
        self.flight
            .iter_mut()
            .find(|(_, f)| f.hash == *hash)
            .map(|(n, f)| (*n, f))
    }

    async fn handle(&mut self, ev: Event) {
        if let Err(e) = self.try_handle(ev).await {
            self.shared.report_error(&format!("lane {}: {e}", self.pk));
        }
    }

    async fn try_handle(&mut self, ev: Event) -> Result<(), PrepareError> {
        let metrics = self.shared.metrics.clone();
        match ev {
            Event::Sent(hash, started, result) => {
                let Some((_, f)) = self.find(&hash) else {
                    return Ok(());
                };
                f.sending = false;
                match result {
                    Ok(Sent::Accepted) => {
                        metrics.broadcast_latency.observe(started.elapsed());
                        add(&metrics.broadcasts, 1);
                        let was_congested = self.congestion_streak > 0;
                        if was_congested {
                            self.congestion_streak = 0;
                            self.congested_until = None;
                            self.shared.set_congested(&self.pk, None);
                        }
                        let Some((_, f)) = self.find(&hash) else {
                            return Ok(());
                        };
                        if !f.submitted {
                            f.submitted = true;
                            let mut conn = self.shared.conn().await?;
                            mark_submitted(&mut conn, &hash.to_string()).await?;
                        }
                    }
                    Ok(Sent::Rejected(err)) => {
                        // A reason to look again, never a verdict: the first copy may sit in another node's pool,
                        // and InvalidNonce on a resend usually means it landed.
                        add(&metrics.rejections, 1);
                        let nonce_clash = matches!(err, InvalidTxError::InvalidNonce { .. });
                        let congested = matches!(
                            err,
                            InvalidTxError::ShardCongested { .. }
                                | InvalidTxError::ShardStuck { .. }
                        );
                        f.doubts = f.doubts.saturating_add(1);
                        f.next_proof = None;
                        tracing::info!(tx = %hash, error = %err, doubts = f.doubts, "submission rejected; will look again");
                        f.looking = true;
                        f.last_lookup = Some(Instant::now());
                        self.look(hash);
                        if congested {
                            // Slow down: no new batches for a while, the same bytes re-broadcast later.
                            add(&metrics.congestion_rejections, 1);
                            self.congestion_streak = self.congestion_streak.saturating_add(1);
                            let cap =
                                Duration::from_millis(self.shared.cfg.max_rebroadcast_backoff_ms);
                            let pause = congestion_pause(self.congestion_streak, cap);
                            let until = Instant::now() + pause;
                            self.congested_until = Some(until);
                            self.shared
                                .set_congested(&self.pk, Some((err.to_string(), until)));
                            tracing::warn!(key = %self.pk, error = %err, pause_ms = pause.as_millis() as u64, streak = self.congestion_streak, "shard congested: lane backs off");
                        }
                        if nonce_clash {
                            self.resync().await;
                        }
                    }
                    Err(e) => {
                        add(&metrics.rpc_errors, 1);
                        tracing::debug!(tx = %hash, error = %e, "no answer to a broadcast; will re-broadcast");
                    }
                }
            }
            Event::Looked(hash, result) => {
                let Some((_, f)) = self.find(&hash) else {
                    return Ok(());
                };
                f.looking = false;
                match result {
                    Err(e) => {
                        add(&metrics.rpc_errors, 1);
                        tracing::debug!(tx = %hash, error = %e, "lookup failed");
                    }
                    Ok(Lookup::Unknown) => {
                        // Not in a block this node has seen: it may still sit in a pool. Send it again (with
                        // back-off) and let the indexed chain decide.
                        f.doubts = f.doubts.saturating_add(1);
                        f.last_sent = None;
                    }
                    Ok(Lookup::Pending) => {
                        f.submitted = true;
                    }
                    Ok(Lookup::Done(outcome)) => {
                        let mut conn = self.shared.conn().await?;
                        if let Some(stored) = get_tx(&mut conn, &hash.to_string()).await? {
                            let how = match &outcome {
                                Ok(()) => Settlement::Success,
                                Err(msg) => Settlement::Failure(msg),
                            };
                            let done = settle(&mut conn, &stored, how).await?;
                            tracing::info!(tx = %hash, ?done, "settled from a tx lookup (the stream had not)");
                        }
                    }
                }
            }
            Event::Proved(hash, verdict) => {
                let again = Duration::from_millis(self.shared.cfg.rebroadcast_after_ms);
                let Some((nonce, f)) = self.find(&hash) else {
                    return Ok(());
                };
                f.proving = false;
                match verdict {
                    Verdict::NotYet(why) => {
                        f.next_proof = Some(Instant::now() + again);
                        tracing::debug!(tx = %hash, %why, "not proven dead; re-broadcasting the same bytes");
                    }
                    Verdict::Dead(reason) => {
                        let mut conn = self.shared.conn().await?;
                        // `bury` moves it only while the store still shows it not included (see death.rs).
                        let handed_back = bury(&mut conn, &hash.to_string(), &reason).await?;
                        drop(conn);
                        self.flight.remove(&nonce);
                        add(&metrics.txs_dead, 1);
                        tracing::info!(tx = %hash, %reason, handed_back, "dead transaction (proven by the indexed chain): claims handed back");
                    }
                }
            }
        }
        Ok(())
    }

    /// After `InvalidNonce`: the chain's nonce is the truth; go on past it.
    async fn resync(&mut self) {
        match self
            .shared
            .chain
            .access_key_nonce(&self.key.account_id, &self.key.public_key)
            .await
        {
            Ok(Some(chain_nonce)) => {
                add(&self.shared.metrics.nonce_resyncs, 1);
                let before = self.next_nonce;
                self.next_nonce = self.next_nonce.max(chain_nonce + 1);
                tracing::info!(key = %self.pk, chain_nonce, before, after = self.next_nonce, "lane resynced");
            }
            Ok(None) => self
                .shared
                .report_error(&format!("key {} disappeared from the chain", self.pk)),
            Err(e) => self.shared.report_error(&e.to_string()),
        }
    }

    /// Cuts new batches while there is room in flight and work to do.
    async fn fill(&mut self) -> Result<(), PrepareError> {
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
        for token in tokens {
            if self
                .blocked
                .get(&token)
                .is_some_and(|t| *t > Instant::now())
            {
                continue;
            }
            while self.flight.len() < max {
                // Pacing: no deeper a queue in the chain than it executes in `pace_blocks` chunks; the rest
                // waits as pending claims (which coalescing can still merge).
                if let Some(cap) = self.shared.pace_limit(&token) {
                    if self.shared.in_flight_except(&self.pk) + self.flight.len() >= cap {
                        break;
                    }
                }
                let opts = match self.options(&token).await? {
                    Ok(opts) => opts,
                    Err(unknown) => {
                        // Fail closed: no balance, no signing for this token.
                        add(&self.shared.metrics.balance_unknown, 1);
                        self.shared.set_blocked(&token, &unknown);
                        self.blocked
                            .insert(token.clone(), Instant::now() + Duration::from_secs(1));
                        break;
                    }
                };
                let lane = LaneState {
                    nonce: self.next_nonce,
                    block_hash,
                };
                self.shared.refresh_gas(&token).await;
                let mut conn = self.shared.conn().await?;
                let limits = self.shared.limits_for(&token);
                let owner = self.shared.owner.clone();
                let out =
                    prepare(&mut conn, &owner, &self.key, &token, lane, &limits, &opts).await?;
                drop(conn);
                match out {
                    Prepared::Batch(b) => {
                        let m = &self.shared.metrics;
                        add(&m.batches, 1);
                        add(&m.transfers, b.transfers as u64);
                        add(&m.unpayable, b.unpayable as u64);
                        self.shared.clear_blocked(&token);
                        self.next_nonce += 1;
                        sent.push(b.batch.signed.clone());
                        let mut f = InFlight::new(b.batch.signed, false);
                        f.sending = true;
                        self.flight.insert(b.batch.nonce, f);
                    }
                    Prepared::Idle | Prepared::Wait(_) => break,
                    Prepared::Blocked(reason) => {
                        self.shared.set_blocked(&token, &reason);
                        self.blocked
                            .insert(token.clone(), Instant::now() + Duration::from_secs(1));
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

    /// Guards and registrations for the next batch of `token`; `Ok(Err(why))` when its balance is unknown.
    async fn options(&self, token: &str) -> Result<Result<BatchOptions, String>, PrepareError> {
        let cfg = &self.shared.cfg;
        let balance = match self.shared.token_balance(token).await {
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
            self.shared.unregistered(token, receivers).await
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
            idle: self.flight.values().all(|f| f.submitted),
        }))
    }
}
