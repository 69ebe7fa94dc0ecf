//! The indexer worker: stream blocks from the cursor on, scan them, commit them with the cursor.
//! Never skips a block: a failed commit is retried (with backoff) until it succeeds or shutdown, and a
//! block whose `prev_hash` is not the cursor's hash is never processed (see [`Indexer::run`]).

use std::sync::Arc;
use std::time::Duration;

use std::time::Instant;

use near_lake_framework::fastnear::fetchers::fetch_block_by_finality;
use near_lake_framework::near_indexer_primitives::types::Finality;
use near_lake_framework::near_indexer_primitives::{CryptoHash, StreamerMessage};
use near_lake_framework::FastNearClient;
use payouts_store::cursor::read_cursor;
use payouts_store::stalls::{clear_stall, report_stall, StallKind};
use payouts_store::{PgPool, StoreError};
use tokio_util::sync::CancellationToken;

use crate::apply::commit_blocks;
use crate::config::IndexerConfig;
use crate::error::IndexerError;
use crate::metrics::{IndexerMetrics, StallState};
use crate::rules::{compile, Rule};
use crate::scan::{scan_block, BlockFindings};
use crate::source::{self, fastnear_url, SourceConfig, SourceHealth};

/// How often the chain head is polled (FastNear sources).
const HEAD_POLL: Duration = Duration::from_secs(3);

/// A configured indexer.
pub struct Indexer {
    pool: PgPool,
    cfg: IndexerConfig,
    rules: Vec<Rule>,
    metrics: Arc<IndexerMetrics>,
}

impl Indexer {
    /// Validates the configuration.
    pub fn new(
        pool: PgPool,
        cfg: IndexerConfig,
        metrics: Arc<IndexerMetrics>,
    ) -> Result<Self, IndexerError> {
        cfg.validate().map_err(IndexerError::Config)?;
        let rules = compile(&cfg.rules).map_err(|e| IndexerError::Config(e.to_string()))?;
        Ok(Self {
            pool,
            cfg,
            rules,
            metrics,
        })
    }

    /// Its metrics.
    pub fn metrics(&self) -> Arc<IndexerMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Where streaming starts: after the cursor, else `start_block_height`, else the chain head.
    pub async fn start_height(&self) -> Result<u64, IndexerError> {
        let mut conn = payouts_store::get(&self.pool).await?;
        if let Some(cursor) = read_cursor(&mut conn, &self.cfg.stream).await? {
            return Ok(cursor.block_height + 1);
        }
        if let Some(h) = self.cfg.start_block_height {
            return Ok(h);
        }
        match &self.cfg.source {
            SourceConfig::Fastnear { endpoint } => {
                let client = FastNearClient::new(fastnear_url(endpoint), None);
                let head = tokio::time::timeout(Duration::from_secs(30), fetch_block_by_finality(&client, Finality::Final))
                    .await
                    .map_err(|_| IndexerError::Source(format!("no final block from {endpoint} within 30 s")))?;
                Ok(head.header.height)
            }
            _ => Err(IndexerError::Config(
                "indexer.start_block_height: required for s3/dir sources when there is no cursor yet".into(),
            )),
        }
    }

    /// The cursor's height and hash, when there is a cursor (the hash is `None` for a cursor written
    /// without one).
    async fn last_processed(&self) -> Result<Option<(u64, Option<CryptoHash>)>, IndexerError> {
        let mut conn = payouts_store::get(&self.pool).await?;
        let Some(cursor) = read_cursor(&mut conn, &self.cfg.stream).await? else {
            return Ok(None);
        };
        let hash = cursor
            .block_hash
            .as_deref()
            .and_then(|h| match h.parse::<CryptoHash>() {
                Ok(hash) => Some(hash),
                Err(_) => {
                    tracing::warn!(stream = %self.cfg.stream, height = cursor.block_height, hash = h, "the cursor's block hash does not parse: the next block's prev_hash is not checked");
                    None
                }
            });
        Ok(Some((cursor.block_height, hash)))
    }

    /// Runs until `shutdown` is cancelled (returns `Ok`) or the stream fails (returns the error).
    ///
    /// Never skips a block: each block's `prev_hash` must be the hash of the last processed block (the
    /// cursor's). A block that does not chain is not processed: the stall is logged, stored for `/ready`
    /// and `/status` and shown in the metrics, and the stream is started again from the cursor with
    /// back-off until the missing block is there. A skipped height is no gap: the next block still chains.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), IndexerError> {
        let start = self.start_height().await?;
        let mut last: Option<(u64, CryptoHash)> = self
            .last_processed()
            .await?
            .and_then(|(h, hash)| hash.map(|hash| (h, hash)));
        tracing::info!(stream = %self.cfg.stream, start, "indexer starting");
        // A stall stored by an earlier run is found again if it still holds.
        self.store_stall(None).await;
        let health = self.metrics.source_health();
        let mut stream = self.open(start, &health).await?;
        let head_watch = self.watch_head(shutdown.child_token());
        // Replays requested over HTTP run here, beside the stream (their own pool connections). However
        // this function ends, the job runner is stopped (a running job is handed back to the queue).
        let jobs_stop = shutdown.child_token();
        let _stop_jobs = jobs_stop.clone().drop_guard();
        let jobs = tokio::spawn(crate::jobs::run_jobs(
            self.pool.clone(),
            self.cfg.clone(),
            jobs_stop.clone(),
        ));
        let max = self.cfg.max_blocks_per_commit;
        let mut watch = Watch::new(&self.cfg);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut held: Option<StreamerMessage> = None;
        loop {
            let first = match held.take() {
                Some(m) => Some(m),
                None => tokio::select! {
                    _ = shutdown.cancelled() => break,
                    m = stream.blocks.recv() => m,
                    _ = tick.tick() => {
                        let at = last.map_or(start.saturating_sub(1), |(h, _)| h);
                        self.check_stuck(&health, at, &mut watch).await;
                        continue;
                    }
                },
            };
            let Some(first) = first else {
                let why = match (&mut stream.task).await {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) => "stream ended".into(),
                    Err(e) => e.to_string(),
                };
                return Err(IndexerError::Source(why));
            };
            if let Some(expected) = last.filter(|(_, hash)| *hash != first.block.header.prev_hash) {
                let delay = self.on_gap(expected, &first, &mut watch).await;
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
                // Fetch the range after the cursor again: the missing block may be there by now.
                stream = self.open(expected.0 + 1, &health).await?;
                continue;
            }
            let mut tip = (first.block.header.height, first.block.header.hash);
            let mut batch = vec![self.scan(&first)];
            drop(first);
            while batch.len() < max {
                let Ok(m) = stream.blocks.try_recv() else {
                    break;
                };
                if m.block.header.prev_hash != tip.1 {
                    // Commit what chains; the next turn reports the gap.
                    held = Some(m);
                    break;
                }
                tip = (m.block.header.height, m.block.header.hash);
                batch.push(self.scan(&m));
            }
            if !self.commit_with_retry(&batch, &shutdown).await? {
                break;
            }
            last = Some(tip);
            watch.progressed();
            if watch.stalled != StallState::None {
                tracing::info!(stream = %self.cfg.stream, height = tip.0, was = ?watch.stalled, "indexer advancing again");
                watch.stalled = StallState::None;
                self.metrics.set_stalled(StallState::None);
                self.store_stall(None).await;
            }
        }
        stream.task.abort();
        if let Some(task) = head_watch {
            task.abort();
        }
        jobs_stop.cancel();
        let _ = jobs.await;
        tracing::info!(stream = %self.cfg.stream, "indexer stopped");
        Ok(())
    }

    async fn open(
        &self,
        from: u64,
        health: &Arc<SourceHealth>,
    ) -> Result<source::Stream, IndexerError> {
        source::start_watched(
            &self.cfg.source,
            from,
            self.cfg.fetch(None),
            Arc::clone(health),
        )
        .await
    }

    /// A block that does not chain onto `expected` (the last processed block): logged, counted, stored.
    /// Returns how long to wait before fetching again.
    async fn on_gap(
        &self,
        expected: (u64, CryptoHash),
        got: &StreamerMessage,
        watch: &mut Watch,
    ) -> Duration {
        let header = &got.block.header;
        if watch.stalled != StallState::ChainGap {
            watch.gap_attempts = 0;
            self.metrics.chain_break();
        }
        watch.gap_attempts += 1;
        let delay = self.cfg.retry().delay(watch.gap_attempts);
        let reason = format!(
            "block {} ({}) has prev_hash {}, but the last processed block is {} ({}): a block between them is missing from the source; not advancing, fetching again",
            header.height, header.hash, header.prev_hash, expected.0, expected.1
        );
        if watch.should_log() {
            tracing::error!(
                stream = %self.cfg.stream,
                last_height = expected.0,
                last_hash = %expected.1,
                next_height = header.height,
                next_hash = %header.hash,
                next_prev_hash = %header.prev_hash,
                attempts = watch.gap_attempts,
                retry_in_ms = delay.as_millis() as u64,
                "chain gap: the next block does not chain onto the cursor; not advancing"
            );
        }
        if watch.stalled != StallState::ChainGap || watch.should_store() {
            watch.stalled = StallState::ChainGap;
            self.metrics.set_stalled(StallState::ChainGap);
            self.store_stall(Some((StallKind::ChainGap, &reason))).await;
        }
        delay
    }

    /// Every second while no block comes: reports the indexer stuck once its source has failed (or given
    /// nothing while the head is ahead) for `stuck_after_secs` with no block committed; clears that once
    /// the source recovers.
    async fn check_stuck(&self, health: &SourceHealth, at: u64, watch: &mut Watch) {
        if let Some(h) = health.listed_head() {
            self.metrics.saw_height(h);
        }
        if watch.stalled == StallState::ChainGap {
            return;
        }
        let quiet = watch.since_progress();
        let head = self.metrics.snapshot().head_seen;
        let reason = match health.oldest_failure() {
            Some(f) if quiet >= watch.stuck_after && f.since.elapsed() >= watch.stuck_after => {
                Some(format!("block source failing: {}", f.describe()))
            }
            Some(_) => None,
            None if quiet >= watch.stuck_after && head > at => Some(format!(
                "no block from the source for {} s while its head is at {head} (indexed: {at})",
                quiet.as_secs()
            )),
            None => None,
        };
        match reason {
            Some(reason) => {
                if watch.stalled != StallState::Source {
                    tracing::error!(stream = %self.cfg.stream, reason = %reason, "indexer stuck");
                }
                if watch.stalled != StallState::Source || watch.should_store() {
                    watch.stalled = StallState::Source;
                    self.metrics.set_stalled(StallState::Source);
                    self.store_stall(Some((StallKind::Source, &reason))).await;
                }
            }
            None if watch.stalled == StallState::Source && health.failing_count() == 0 => {
                tracing::info!(stream = %self.cfg.stream, "block source recovered");
                watch.stalled = StallState::None;
                self.metrics.set_stalled(StallState::None);
                self.store_stall(None).await;
            }
            None => {}
        }
    }

    /// Stores (or with `None` clears) the stream's stall; a database error is logged, not fatal (the
    /// metrics still show it).
    async fn store_stall(&self, stall: Option<(StallKind, &str)>) {
        let result = async {
            let mut conn = payouts_store::get(&self.pool).await?;
            match stall {
                Some((kind, reason)) => {
                    report_stall(&mut conn, &self.cfg.stream, kind, reason).await
                }
                None => clear_stall(&mut conn, &self.cfg.stream).await.map(|_| ()),
            }
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(stream = %self.cfg.stream, error = %e, "cannot store the indexer's stall state");
        }
    }

    /// For FastNear sources, polls the final head every few seconds so lag is measured against the chain,
    /// not only against what the stream has delivered.
    fn watch_head(&self, stop: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
        let SourceConfig::Fastnear { endpoint } = &self.cfg.source else {
            return None;
        };
        let client = FastNearClient::new(fastnear_url(endpoint), None);
        let metrics = Arc::clone(&self.metrics);
        Some(tokio::spawn(async move {
            loop {
                let poll = tokio::time::timeout(
                    HEAD_POLL,
                    fetch_block_by_finality(&client, Finality::Final),
                );
                if let Ok(block) = poll.await {
                    metrics.saw_height(block.header.height);
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(HEAD_POLL) => {}
                }
            }
        }))
    }

    fn scan(
        &self,
        msg: &near_lake_framework::near_indexer_primitives::StreamerMessage,
    ) -> BlockFindings {
        self.metrics.saw_height(msg.block.header.height);
        let found = scan_block(msg, &self.rules);
        for m in &found.malformed {
            tracing::warn!(
                height = found.height,
                receipt_id = %m.receipt_id,
                log_index = m.log_index,
                reason = %m.reason,
                "malformed event log skipped"
            );
        }
        found
    }

    /// Commits a batch, retrying transient failures. Returns false when shutdown came first.
    async fn commit_with_retry(
        &self,
        batch: &[BlockFindings],
        shutdown: &CancellationToken,
    ) -> Result<bool, IndexerError> {
        let mut delay = Duration::from_millis(100);
        loop {
            let result = async {
                let mut conn = payouts_store::get(&self.pool).await?;
                commit_blocks(&mut conn, Some(&self.cfg.stream), batch).await
            }
            .await;
            match result {
                Ok(stats) => {
                    self.metrics.record(&stats);
                    tracing::debug!(
                        height = stats.last_height,
                        blocks = stats.blocks,
                        new_claims = stats.inserted,
                        "committed"
                    );
                    return Ok(true);
                }
                // Another writer moved our cursor: going on would double-process or skip. Stop loudly.
                Err(e @ StoreError::CursorRegression { .. }) => return Err(e.into()),
                Err(e) => {
                    let first = batch.first().map_or(0, |b| b.height);
                    tracing::error!(error = %e, from_height = first, retry_in_ms = delay.as_millis() as u64, "commit failed; retrying the same blocks");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(false),
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

/// How often a persisting stall is logged again and its stored row refreshed.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The run loop's view of its own progress.
struct Watch {
    stalled: StallState,
    gap_attempts: u32,
    progress_at: Instant,
    logged_at: Option<Instant>,
    stored_at: Option<Instant>,
    stuck_after: Duration,
}

impl Watch {
    fn new(cfg: &IndexerConfig) -> Self {
        Self {
            stalled: StallState::None,
            gap_attempts: 0,
            progress_at: Instant::now(),
            logged_at: None,
            stored_at: None,
            stuck_after: Duration::from_secs(cfg.stuck_after_secs),
        }
    }

    fn progressed(&mut self) {
        self.progress_at = Instant::now();
    }

    fn since_progress(&self) -> Duration {
        self.progress_at.elapsed()
    }

    fn should_log(&mut self) -> bool {
        due(&mut self.logged_at, self.stalled == StallState::ChainGap)
    }

    fn should_store(&mut self) -> bool {
        due(&mut self.stored_at, true)
    }
}

/// Whether `REPORT_EVERY` has passed since `*at` (always when `!ongoing`); if so, `*at` becomes now.
fn due(at: &mut Option<Instant>, ongoing: bool) -> bool {
    let yes = !ongoing || at.is_none_or(|t| t.elapsed() >= REPORT_EVERY);
    if yes {
        *at = Some(Instant::now());
    }
    yes
}
