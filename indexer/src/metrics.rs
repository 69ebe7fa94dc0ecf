//! Counters and gauges the indexer keeps: read by the binary's Prometheus registry (the [`Collector`](payouts_near::prom::Collector) impl below) and by `/status` through the binary's probe.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::source::SourceHealth;

/// Shared indexer metrics (cheap atomics; read with [`IndexerMetrics::snapshot`]).
#[derive(Debug, Default)]
pub struct IndexerMetrics {
    last_height: AtomicU64,
    last_block_timestamp_nanos: AtomicU64,
    head_seen: AtomicU64,
    blocks: AtomicU64,
    events_matched: AtomicU64,
    claims_inserted: AtomicU64,
    malformed_logs: AtomicU64,
    claims_confirmed: AtomicU64,
    claims_handed_back: AtomicU64,
    claims_failed: AtomicU64,
    chain_breaks: AtomicU64,
    stalled: AtomicU64,
    source: Arc<SourceHealth>,
}

/// Why the indexer is not advancing, as the `payouts_indexer_stalled` gauge shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StallState {
    /// Advancing (or waiting for new blocks at the head).
    #[default]
    None,
    /// The next block's `prev_hash` does not chain onto the cursor.
    ChainGap,
    /// The block source has failed for longer than `stuck_after_secs`.
    Source,
}

/// A point-in-time copy of [`IndexerMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MetricsSnapshot {
    /// Last committed block height.
    pub last_height: u64,
    /// Its timestamp (ns).
    pub last_block_timestamp_nanos: u64,
    /// Highest block height seen from the source.
    pub head_seen: u64,
    /// Blocks committed.
    pub blocks: u64,
    /// Event items that matched a rule.
    pub events_matched: u64,
    /// Claims that were new rows.
    pub claims_inserted: u64,
    /// Malformed event logs of watched contracts.
    pub malformed_logs: u64,
    /// Claims confirmed by reconciliation.
    pub claims_confirmed: u64,
    /// Claims handed back for another try.
    pub claims_handed_back: u64,
    /// Claims failed for good by reconciliation.
    pub claims_failed: u64,
    /// Blocks seen whose `prev_hash` was not the hash of the last processed block.
    pub chain_breaks: u64,
    /// Failed fetches and listings of the block source.
    pub source_errors: u64,
    /// Source objects failing right now.
    pub source_failing_objects: u64,
    /// Whether (and why) the indexer is stalled.
    pub stalled: StallState,
}

impl MetricsSnapshot {
    /// Blocks between the head seen and the last committed block.
    pub fn lag_blocks(&self) -> u64 {
        self.head_seen.saturating_sub(self.last_height)
    }

    /// Seconds between now and the last committed block's timestamp.
    pub fn lag_seconds(&self, now_nanos: u64) -> f64 {
        if self.last_block_timestamp_nanos == 0 {
            return 0.0;
        }
        // Display only: precision loss is fine.
        now_nanos.saturating_sub(self.last_block_timestamp_nanos) as f64 / 1e9
    }
}

/// What one commit added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Highest block committed.
    pub last_height: u64,
    /// Its timestamp.
    pub last_timestamp_nanos: u64,
    /// Blocks committed.
    pub blocks: u64,
    /// Matching event items.
    pub events: u64,
    /// New claim rows.
    pub inserted: u64,
    /// Malformed logs.
    pub malformed: u64,
    /// Confirmed claims.
    pub confirmed: u64,
    /// Handed-back claims.
    pub handed_back: u64,
    /// Failed claims.
    pub failed: u64,
    /// Treasury-key transactions recorded (`key_transactions`).
    pub key_txs: u64,
    /// New incidents recorded.
    pub incidents: u64,
}

impl IndexerMetrics {
    /// Adds a commit's figures.
    pub fn record(&self, s: &CommitStats) {
        self.last_height.fetch_max(s.last_height, Ordering::Relaxed);
        self.last_block_timestamp_nanos
            .fetch_max(s.last_timestamp_nanos, Ordering::Relaxed);
        self.head_seen.fetch_max(s.last_height, Ordering::Relaxed);
        self.blocks.fetch_add(s.blocks, Ordering::Relaxed);
        self.events_matched.fetch_add(s.events, Ordering::Relaxed);
        self.claims_inserted
            .fetch_add(s.inserted, Ordering::Relaxed);
        self.malformed_logs
            .fetch_add(s.malformed, Ordering::Relaxed);
        self.claims_confirmed
            .fetch_add(s.confirmed, Ordering::Relaxed);
        self.claims_handed_back
            .fetch_add(s.handed_back, Ordering::Relaxed);
        self.claims_failed.fetch_add(s.failed, Ordering::Relaxed);
    }

    /// Notes a block height seen from the source (not yet committed).
    pub fn saw_height(&self, height: u64) {
        self.head_seen.fetch_max(height, Ordering::Relaxed);
    }

    /// The block source's health, shared with every stream the indexer starts.
    pub fn source_health(&self) -> Arc<SourceHealth> {
        Arc::clone(&self.source)
    }

    /// Counts a block that did not chain onto the last processed one.
    pub fn chain_break(&self) {
        self.chain_breaks.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the stall state.
    pub fn set_stalled(&self, state: StallState) {
        let v = match state {
            StallState::None => 0,
            StallState::ChainGap => 1,
            StallState::Source => 2,
        };
        self.stalled.store(v, Ordering::Relaxed);
    }

    /// Reads every value.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            last_height: r(&self.last_height),
            last_block_timestamp_nanos: r(&self.last_block_timestamp_nanos),
            head_seen: r(&self.head_seen),
            blocks: r(&self.blocks),
            events_matched: r(&self.events_matched),
            claims_inserted: r(&self.claims_inserted),
            malformed_logs: r(&self.malformed_logs),
            claims_confirmed: r(&self.claims_confirmed),
            claims_handed_back: r(&self.claims_handed_back),
            claims_failed: r(&self.claims_failed),
            chain_breaks: r(&self.chain_breaks),
            source_errors: self.source.errors_total(),
            source_failing_objects: self.source.failing_count(),
            stalled: match r(&self.stalled) {
                1 => StallState::ChainGap,
                2 => StallState::Source,
                _ => StallState::None,
            },
        }
    }
}

/// `/metrics` of an indexer running in the process: registered by the binary in the registry it owns.
impl payouts_near::prom::Collector for IndexerMetrics {
    fn encode(&self, mut enc: payouts_near::prom::DescriptorEncoder) -> std::fmt::Result {
        use payouts_near::prom::{counter, gauge};
        let s = self.snapshot();
        let now_nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let e = &mut enc;
        gauge(
            e,
            "payouts_indexer_last_height",
            "Last committed block height.",
            s.last_height,
        )?;
        gauge(
            e,
            "payouts_indexer_head_seen",
            "Highest block height seen from the source.",
            s.head_seen,
        )?;
        gauge(
            e,
            "payouts_indexer_lag_blocks",
            "Blocks between the head seen and the last committed block.",
            s.lag_blocks(),
        )?;
        gauge(
            e,
            "payouts_indexer_lag_seconds",
            "Seconds since the last committed block's timestamp.",
            s.lag_seconds(now_nanos),
        )?;
        counter(
            e,
            "payouts_indexer_blocks_total",
            "Blocks committed.",
            s.blocks,
        )?;
        counter(
            e,
            "payouts_indexer_events_matched_total",
            "Event items that matched a rule.",
            s.events_matched,
        )?;
        counter(
            e,
            "payouts_indexer_claims_inserted_total",
            "Claims that were new rows.",
            s.claims_inserted,
        )?;
        counter(
            e,
            "payouts_indexer_malformed_logs_total",
            "Malformed event logs of watched contracts.",
            s.malformed_logs,
        )?;
        counter(
            e,
            "payouts_indexer_claims_confirmed_total",
            "Claims confirmed by reconciliation.",
            s.claims_confirmed,
        )?;
        counter(
            e,
            "payouts_indexer_claims_handed_back_total",
            "Claims handed back for another try.",
            s.claims_handed_back,
        )?;
        counter(
            e,
            "payouts_indexer_claims_failed_total",
            "Claims failed for good by reconciliation.",
            s.claims_failed,
        )?;
        counter(
            e,
            "payouts_indexer_chain_breaks_total",
            "Blocks whose prev_hash was not the hash of the last processed block (each gap counted once).",
            s.chain_breaks,
        )?;
        counter(
            e,
            "payouts_indexer_source_errors_total",
            "Failed fetches and listings of the block source (s3/dir).",
            s.source_errors,
        )?;
        gauge(
            e,
            "payouts_indexer_source_failing_objects",
            "Source objects failing right now.",
            s.source_failing_objects,
        )
    }
}
