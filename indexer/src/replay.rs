//! `payouts replay`: re-scan a block range with the same rules and the same commit path, without moving the
//! cursor. Idempotent: an already indexed range adds zero rows. `dry_run` rolls every write back.
//!
//! A range whose blocks do not chain (a block's `prev_hash` is not the hash of the block before it in the
//! source) is refused with [`IndexerError::Chain`] naming the broken link; blocks before it may have been
//! written (each commit is whole and idempotent), nothing after it. An object that keeps failing ends the
//! replay after `replay_max_attempts` fetches with its key and cause. Waiting for blocks past the source's
//! head is reported every few seconds, and fails after `replay_wait_timeout_secs` when set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use near_lake_framework::near_indexer_primitives::CryptoHash;
use tokio::sync::Notify;

use payouts_store::{AsyncConnection, PgPool, StoreError};

use crate::apply::{commit_blocks, write_blocks};
use crate::config::IndexerConfig;
use crate::error::IndexerError;
use crate::metrics::CommitStats;
use crate::rules::compile;
use crate::scan::{scan_block, BlockFindings};
use crate::source;

/// How long a partial batch waits for more blocks before the idle committing half takes it.
const LINGER: Duration = Duration::from_millis(100);

/// How often a replay waiting for blocks (its `--to` past the source's head, or a failing object) says so.
const WAIT_REPORT: Duration = Duration::from_secs(5);

/// What a replay did (or, dry, would do).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReplayReport {
    /// Blocks read.
    pub blocks: u64,
    /// Matching event items.
    pub events: u64,
    /// New claim rows (would be, when dry).
    pub new_claims: u64,
    /// Malformed logs.
    pub malformed: u64,
    /// Claims confirmed by reconciliation.
    pub confirmed: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Time spent scanning blocks (matching rules, collecting outcomes).
    pub scan_time: Duration,
    /// Time spent in database transactions.
    pub commit_time: Duration,
    /// Database transactions (blocks per commit: `blocks / commits`).
    pub commits: u64,
    /// Whether writes were rolled back.
    pub dry_run: bool,
}

impl ReplayReport {
    /// Blocks per second.
    pub fn blocks_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.blocks as f64 / secs
        } else {
            0.0
        }
    }
}

enum Outcome {
    Store(StoreError),
    RolledBack(CommitStats),
}

impl From<diesel::result::Error> for Outcome {
    fn from(e: diesel::result::Error) -> Self {
        Outcome::Store(e.into())
    }
}

/// Replays `from..=to`. `progress` is called with each committed height.
pub async fn replay(
    pool: &PgPool,
    cfg: &IndexerConfig,
    from: u64,
    to: u64,
    dry_run: bool,
    mut progress: impl FnMut(u64),
) -> Result<ReplayReport, IndexerError> {
    if from > to {
        return Err(IndexerError::Config(format!(
            "--from {from} is after --to {to}"
        )));
    }
    cfg.validate().map_err(IndexerError::Config)?;
    let rules = compile(&cfg.rules).map_err(|e| IndexerError::Config(e.to_string()))?;
    let started = Instant::now();
    let fetch = source::Fetch {
        max_attempts: Some(cfg.replay_max_attempts),
        ..cfg.fetch(Some(to))
    };
    let mut stream = source::start(&cfg.source, from, fetch).await?;
    let wait_timeout = cfg.replay_wait_timeout_secs.map(Duration::from_secs);
    let mut report = ReplayReport {
        dry_run,
        ..Default::default()
    };
    let mut conn = payouts_store::get(pool).await?;
    // Scanning the next blocks overlaps committing the previous ones: both run in this task, the database
    // working on a batch while the next is read and scanned. A batch is handed over when it holds
    // `max_blocks_per_commit` blocks or reaches `to`; a partial one only once the committing half is idle and
    // the batch's first block has waited `LINGER` (a source slower than the database). Handing over whatever
    // was ready made batches of 4–6 blocks on the 2-core bench machine (each commit's round trips then cost
    // more than the overlap gained).
    let (batches, to_commit) = tokio::sync::mpsc::channel::<Vec<BlockFindings>>(1);
    // Set while the committing half waits for a batch; `wake` tells the reading half it changed.
    let idle = AtomicBool::new(false);
    let wake = Notify::new();
    let mut scan_time = Duration::ZERO;
    let read = async {
        let max = cfg.max_blocks_per_commit;
        let mut found: Vec<BlockFindings> = Vec::with_capacity(max);
        let mut since = Instant::now();
        let mut lingered = false;
        let mut end = false;
        // The last block received, for the chain check; and when a block last came, for the wait report.
        let mut prev: Option<(u64, CryptoHash)> = None;
        let mut block_at = Instant::now();
        let mut waiting = tokio::time::interval(Duration::from_secs(1));
        waiting.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        waiting.reset();
        let mut reported_at = Instant::now();
        loop {
            let ready = found.len() >= max
                || (end && !found.is_empty())
                || (lingered && !found.is_empty() && idle.load(Ordering::Relaxed));
            if ready {
                let batch = std::mem::replace(&mut found, Vec::with_capacity(max));
                if batches.send(batch).await.is_err() {
                    // The committing half failed: it reports why.
                    break;
                }
                // Waiting for the database is not waiting for the source.
                block_at = Instant::now();
                lingered = false;
                continue;
            }
            if end {
                break;
            }
            tokio::select! {
                biased;
                msg = stream.blocks.recv() => {
                    let Some(msg) = msg else {
                        let why = (&mut stream.task)
                            .await
                            .map_or_else(|e| e.to_string(), |r| r.err().unwrap_or_default());
                        return Err(IndexerError::Source(format!(
                            "stream ended before block {to}: {why}"
                        )));
                    };
                    let height = msg.block.header.height;
                    block_at = Instant::now();
                    if let Some((ph, phash)) = prev.filter(|(_, h)| *h != msg.block.header.prev_hash) {
                        return Err(IndexerError::Chain(format!(
                            "block {height} ({}) has prev_hash {}, but the block before it in the source is {ph} ({phash}): a block between {ph} and {height} is missing from the source",
                            msg.block.header.hash, msg.block.header.prev_hash
                        )));
                    }
                    prev = Some((height, msg.block.header.hash));
                    if height > to {
                        end = true;
                        continue;
                    }
                    let t = Instant::now();
                    if found.is_empty() {
                        since = t;
                    }
                    found.push(scan_block(&msg, &rules));
                    scan_time += t.elapsed();
                    drop(msg);
                    end = height >= to;
                    // Let the committing half send its next statement.
                    tokio::task::yield_now().await;
                }
                () = wake.notified() => {}
                () = batches.closed() => break,
                _ = waiting.tick() => {
                    let quiet = block_at.elapsed();
                    let timed_out = wait_timeout.is_some_and(|l| quiet >= l);
                    if !timed_out && (quiet < WAIT_REPORT || reported_at.elapsed() < WAIT_REPORT) {
                        continue;
                    }
                    reported_at = Instant::now();
                    let next = prev.map_or(from, |(h, _)| h + 1);
                    let head = stream.health.listed_head().map_or_else(|| "unknown".to_string(), |h| h.to_string());
                    let failing = stream.health.oldest_failure().map(|f| f.describe());
                    if let Some(limit) = wait_timeout.filter(|l| quiet >= *l) {
                        return Err(IndexerError::Source(format!(
                            "no block {next}..={to} from the source for {} s (replay_wait_timeout_secs = {}); the source's last block: {head}{}",
                            quiet.as_secs(),
                            limit.as_secs(),
                            failing.map(|f| format!("; failing: {f}")).unwrap_or_default()
                        )));
                    }
                    tracing::info!(next, to, source_head = %head, waited_s = quiet.as_secs(), failing = failing.as_deref(), "replay waiting for blocks from the source");
                }
                () = tokio::time::sleep_until((since + LINGER).into()), if !found.is_empty() && !lingered => {
                    lingered = true;
                }
            }
        }
        drop(batches);
        Ok(())
    };
    let commit = async {
        // Owned, so a failed commit drops it and the reading half stops at once (`send` fails, `closed` fires)
        // instead of waiting for room in the channel.
        let mut to_commit = to_commit;
        loop {
            idle.store(true, Ordering::Relaxed);
            wake.notify_one();
            let batch = to_commit.recv().await;
            idle.store(false, Ordering::Relaxed);
            let Some(batch) = batch else { break };
            let t = Instant::now();
            let stats = if dry_run {
                let rolled = conn
                    .transaction(async |c| {
                        let stats = write_blocks(c, None, &batch)
                            .await
                            .map_err(Outcome::Store)?;
                        Err::<CommitStats, _>(Outcome::RolledBack(stats))
                    })
                    .await;
                match rolled {
                    Err(Outcome::RolledBack(s)) => s,
                    Err(Outcome::Store(e)) => return Err(IndexerError::from(e)),
                    Ok(s) => s,
                }
            } else {
                commit_blocks(&mut conn, None, &batch).await?
            };
            report.commit_time += t.elapsed();
            report.commits += 1;
            report.blocks += stats.blocks;
            report.events += stats.events;
            report.new_claims += stats.inserted;
            report.malformed += stats.malformed;
            report.confirmed += stats.confirmed;
            if let Some(last) = batch.last() {
                progress(last.height);
            }
        }
        Ok(())
    };
    let (read, commit) = tokio::join!(read, commit);
    commit?;
    read?;
    stream.task.abort();
    report.scan_time = scan_time;
    report.elapsed = started.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use payouts_devnet::{Devnet, Faults};
    use payouts_store::testdb::TestDb;

    use super::*;

    /// A batch is handed over full while the stream is ahead, and before it is full once blocks come slower
    /// than `LINGER` (so a replay that catches up with the chain head still commits as it goes).
    #[tokio::test]
    async fn batches_are_full_while_ahead_and_partial_when_blocks_come_slowly() {
        let (devnet, _keys) = Devnet::start_for_tests(|_| {}).await.unwrap();
        // Blocks 1..=20 final: the stream has them all at once.
        while devnet.final_height() < 20 {
            assert!(
                devnet
                    .wait_for_height(devnet.head_height() + 1, Duration::from_secs(30))
                    .await
            );
        }
        let db = TestDb::new().await;
        let pool = db.pool().await;
        let cfg = IndexerConfig {
            max_blocks_per_commit: 10,
            ..IndexerConfig::fastnear(devnet.rpc_url())
        };

        let mut committed = vec![];
        let ahead = replay(&pool, &cfg, 1, 20, false, |h| committed.push(h))
            .await
            .unwrap();
        assert_eq!((ahead.blocks, ahead.commits), (20, 2));
        assert_eq!(committed, [10, 20]);

        devnet.set_faults(Faults {
            block_delay_ms: 400,
            ..devnet.faults()
        });
        let from = devnet.final_height() + 1;
        let lagging = replay(&pool, &cfg, from, from + 3, false, |_| {})
            .await
            .unwrap();
        assert_eq!(lagging.blocks, 4);
        assert!(lagging.commits >= 2, "{lagging:?}");

        // A failing commit ends the replay with its error while the reading half still has blocks to hand over.
        {
            use diesel_async::RunQueryDsl;
            diesel::sql_query("ALTER TABLE transactions RENAME TO transactions_gone")
                .execute(&mut db.conn().await)
                .await
                .unwrap();
        }
        let cfg = IndexerConfig {
            max_blocks_per_commit: 2,
            ..cfg
        };
        let failed = tokio::time::timeout(
            Duration::from_secs(30),
            replay(&pool, &cfg, 1, 20, false, |_| {}),
        )
        .await
        .expect("the replay ends");
        assert!(matches!(failed, Err(IndexerError::Store(_))), "{failed:?}");
        devnet.shutdown().await;
    }
}
