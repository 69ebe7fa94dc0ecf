//! One nonce lane: one leased key, its transactions in flight, in strict nonce order.
//!
//! The lane cuts batches ([`crate::prepare`]: stored and claims `submitted` in one DB transaction *before*
//! anything is sent), hands them to the node in nonce order, re-broadcasts the same bytes when an answer is
//! missing, and lets a transaction go only when it is settled (by the indexer's reconciliation, or by a `tx`
//! lookup after `outcome_timeout`) or proven dead by the indexed chain ([`crate::death`]), in which case its
//! claims go back to `pending`. Rejections, timeouts and `UNKNOWN_TRANSACTION` are never a verdict: they make
//! the lane re-broadcast the same bytes with back-off and ask the indexed chain for a proof.
//!
//! Parts: what the lane knows of each transaction in flight and the back-off rules (`flight`), what answers
//! and proofs do to it — settlement, burial, congestion back-off (`events`), and cutting new batches under
//! the guards (`fill`).

mod events;
mod fill;
mod flight;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use near_primitives::hash::CryptoHash;
use near_primitives::transaction::SignedTransaction;
use payouts_store::incidents::record_nonce_ahead;
use payouts_store::keys::list_keys;
use payouts_store::transactions::{tx_statuses, unsettled_of_key};
use payouts_store::{StoreError, TxStatus};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::death::{self, Verdict};
use crate::keyfile::TreasuryKey;
use crate::metrics::add;
use crate::prepare::PrepareError;
use crate::shared::Shared;
use flight::{Asking, Event, InFlight, Known, Proof};

/// Why a lane ended.
#[derive(Debug)]
pub(crate) enum LaneEnd {
    /// Stopped and drained (or told to stop at once).
    Done,
    /// The key's lease was lost: another process may hold it now.
    LeaseLost,
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
            let known = if stored.status == TxStatus::Submitted {
                Known::Submitted
            } else {
                Known::Signed
            };
            self.flight
                .insert(stored.nonce as u64, InFlight::new(tx, known));
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
                    f.advance(Known::Included);
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
            if f.proof_due(late, now) {
                f.proof = Proof::Gathering;
                to_prove.push(f.tx.clone());
            }
            if f.asking != Asking::Nothing {
                continue;
            }
            if !f.included() && f.resend_due(again, cap) {
                f.asking = Asking::Sending;
                to_send.push(f.tx.clone());
            } else if late && f.last_lookup.is_none_or(|t| t.elapsed() >= again) {
                f.asking = Asking::LookingUp;
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
}
