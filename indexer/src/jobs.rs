//! Replay jobs requested over HTTP (`POST /admin/replay` queues a `replay_jobs` row): the indexer process
//! takes them one at a time and runs them through [`crate::replay::replay`], reporting progress every
//! [`BEAT`]. A job whose owner stopped beating for [`STALE_SECS`] is taken over by another indexer process
//! (a killed one's replay resumes); a graceful stop hands the job back to the queue. Replays are idempotent,
//! so running a range again inserts nothing twice (see payouts-store `replay_jobs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use payouts_store::replay_jobs::{finish, heartbeat, release, take_next, Outcome, ReplayJob};
use payouts_store::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::IndexerConfig;

/// How often the queue is looked at.
const POLL: Duration = Duration::from_secs(1);
/// How often a running job's progress and hold are written.
const BEAT: Duration = Duration::from_secs(2);
/// A running job whose heartbeat is older than this is taken over.
pub const STALE_SECS: u32 = 30;

/// Runs queued replay jobs of `cfg.stream` until `shutdown`.
pub async fn run_jobs(pool: PgPool, cfg: IndexerConfig, shutdown: CancellationToken) {
    let owner = payouts_store::owner::process_owner("indexer");
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = poll.tick() => {}
        }
        let job = match payouts_store::get(&pool).await {
            Ok(mut conn) => take_next(&mut conn, &cfg.stream, &owner, STALE_SECS).await,
            Err(e) => Err(e),
        };
        match job {
            Ok(Some(job)) => run_one(&pool, &cfg, job, &owner, &shutdown).await,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "replay jobs: cannot read the queue"),
        }
    }
}

async fn run_one(
    pool: &PgPool,
    cfg: &IndexerConfig,
    job: ReplayJob,
    owner: &str,
    shutdown: &CancellationToken,
) {
    let (id, from, to) = (job.id, job.from_height, job.to_height);
    tracing::info!(job = id, from, to, dry_run = job.dry_run, by = %job.requested_by, "replay job started");
    // 0: nothing committed yet (a replay never commits height 0 as progress worth showing).
    let progress = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&progress);
    let run = crate::replay::replay(pool, cfg, from, to, job.dry_run, move |h| {
        seen.store(h, Ordering::Relaxed)
    });
    tokio::pin!(run);
    let mut beat = tokio::time::interval(BEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let outcome = loop {
        tokio::select! {
            r = &mut run => break match r {
                Ok(report) => Outcome::Done {
                    blocks: report.blocks,
                    events: report.events,
                    new_claims: report.new_claims,
                },
                Err(e) => Outcome::Failed(e.to_string()),
            },
            _ = beat.tick() => {
                let h = progress.load(Ordering::Relaxed);
                match payouts_store::get(pool).await {
                    Ok(mut conn) => match heartbeat(&mut conn, id, owner, (h > 0).then_some(h)).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(job = id, "replay job taken over by another indexer; stopping it here");
                            return;
                        }
                        Err(e) => tracing::warn!(job = id, error = %e, "replay job: heartbeat failed"),
                    },
                    Err(e) => tracing::warn!(job = id, error = %e, "replay job: heartbeat failed"),
                }
            }
            () = shutdown.cancelled() => {
                if let Ok(mut conn) = payouts_store::get(pool).await {
                    if let Err(e) = release(&mut conn, id, owner).await {
                        tracing::warn!(job = id, error = %e, "replay job: cannot hand it back; it is taken over after its heartbeat goes stale");
                    }
                }
                tracing::info!(job = id, "replay job handed back to the queue (shutting down)");
                return;
            }
        }
    };
    match &outcome {
        Outcome::Done {
            blocks, new_claims, ..
        } => {
            tracing::info!(job = id, blocks, new_claims, "replay job done")
        }
        Outcome::Failed(e) => tracing::warn!(job = id, error = %e, "replay job failed"),
    }
    // The end is written even if shutdown comes now: a finished replay must not run again.
    let written = match payouts_store::get(pool).await {
        Ok(mut conn) => finish(&mut conn, id, owner, &outcome).await,
        Err(e) => Err(e),
    };
    match written {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            job = id,
            "replay job was taken over before it finished here"
        ),
        Err(e) => {
            tracing::warn!(job = id, error = %e, "replay job: cannot record its end; it runs again once its heartbeat goes stale (idempotent)")
        }
    }
}
