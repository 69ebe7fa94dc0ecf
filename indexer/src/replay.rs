//! `payouts replay`: re-scan a block range with the same rules and the same commit path, without moving the
//! cursor. Idempotent: an already indexed range adds zero rows. `dry_run` rolls every write back.

use std::time::{Duration, Instant};

use payouts_store::{AsyncConnection, PgPool, StoreError};

use crate::apply::commit_blocks;
use crate::config::IndexerConfig;
use crate::error::IndexerError;
use crate::metrics::CommitStats;
use crate::rules::compile;
use crate::scan::scan_block;
use crate::source;

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
    let mut stream = source::start(&cfg.source, from, cfg.fetch(Some(to))).await?;
    let mut report = ReplayReport {
        dry_run,
        ..Default::default()
    };
    let mut conn = payouts_store::get(pool).await?;
    let mut done = false;
    while !done {
        let Some(first) = stream.blocks.recv().await else {
            let why = (&mut stream.task)
                .await
                .map_or_else(|e| e.to_string(), |r| r.err().unwrap_or_default());
            return Err(IndexerError::Source(format!(
                "stream ended before block {to}: {why}"
            )));
        };
        let mut batch = vec![first];
        while batch.len() < cfg.max_blocks_per_commit
            && batch.last().is_some_and(|b| b.block.header.height < to)
        {
            match stream.blocks.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        batch.retain(|m| m.block.header.height <= to);
        done = batch.is_empty() || batch.last().is_some_and(|b| b.block.header.height >= to);
        let found: Vec<_> = batch.iter().map(|m| scan_block(m, &rules)).collect();
        let stats = conn
            .transaction(async |c| {
                let stats = commit_blocks(c, None, &found)
                    .await
                    .map_err(Outcome::Store)?;
                if dry_run {
                    return Err(Outcome::RolledBack(stats));
                }
                Ok(stats)
            })
            .await;
        let stats = match stats {
            Ok(s) | Err(Outcome::RolledBack(s)) => s,
            Err(Outcome::Store(e)) => return Err(e.into()),
        };
        report.blocks += stats.blocks;
        report.events += stats.events;
        report.new_claims += stats.inserted;
        report.malformed += stats.malformed;
        report.confirmed += stats.confirmed;
        if let Some(last) = found.last() {
            progress(last.height);
        }
    }
    stream.task.abort();
    report.elapsed = started.elapsed();
    Ok(report)
}
