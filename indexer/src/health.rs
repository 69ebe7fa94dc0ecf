//! How a block source is doing: the back-off between fetches of a failing object, the objects failing right
//! now, the failures counted so far, the highest height listed. Shared by the fetching tasks
//! ([`crate::lake`]) and whoever watches the stream (the indexer's stall report, replay's give-up, metrics).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Capped exponential back-off between fetches of a failing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Wait after the first failure.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(10),
        }
    }
}

impl Retry {
    /// The wait after failure number `attempt` (1-based): `initial`, doubled each time, at most `max`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        self.initial.saturating_mul(1u32 << doublings).min(self.max)
    }
}

/// An object of the source that keeps failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Object key (`000093085141/shard_3.json`) or the listing that failed.
    pub key: String,
    /// The last cause (I/O, S3 or HTTP error, JSON error).
    pub cause: String,
    /// Consecutive failed fetches.
    pub attempts: u32,
    /// When its first failure in this row happened.
    pub since: Instant,
}

impl Failure {
    /// One line for logs, `/status` and errors.
    pub fn describe(&self) -> String {
        format!(
            "{}: {} ({} attempts over {} s)",
            self.key,
            self.cause,
            self.attempts,
            self.since.elapsed().as_secs()
        )
    }
}

/// What a source's fetches went through, shared by the fetching tasks and whoever watches the stream.
#[derive(Debug, Default)]
pub struct SourceHealth {
    errors: AtomicU64,
    listed_head: AtomicU64,
    failing: Mutex<HashMap<String, (Failure, Instant)>>,
}

/// How often one failing object is logged at warn at most (its first failure always is).
const WARN_EVERY: Duration = Duration::from_secs(10);

impl SourceHealth {
    /// Failed fetches and listings so far.
    pub fn errors_total(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Highest height the source listed (s3/dir), if any.
    pub fn listed_head(&self) -> Option<u64> {
        Some(self.listed_head.load(Ordering::Relaxed)).filter(|h| *h > 0)
    }

    /// Objects failing right now.
    pub fn failing(&self) -> Vec<Failure> {
        let failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Failure> = failing.values().map(|(f, _)| f.clone()).collect();
        out.sort_by_key(|f| f.since);
        out
    }

    /// How many objects are failing right now.
    pub fn failing_count(&self) -> u64 {
        self.failing.lock().unwrap_or_else(|e| e.into_inner()).len() as u64
    }

    /// The object failing longest, if any.
    pub fn oldest_failure(&self) -> Option<Failure> {
        self.failing().into_iter().next()
    }

    pub(crate) fn listed(&self, height: u64) {
        self.listed_head.fetch_max(height, Ordering::Relaxed);
    }

    /// Records a failed fetch of `key` (warn on its first failure, then at most every [`WARN_EVERY`]).
    pub(crate) fn failed(&self, key: &str, cause: &str, attempts: u32, retry_in: Duration) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let (failure, warned) = failing.entry(key.to_string()).or_insert_with(|| {
            (
                Failure {
                    key: key.to_string(),
                    cause: String::new(),
                    attempts: 0,
                    since: now,
                },
                now.checked_sub(WARN_EVERY * 2).unwrap_or(now),
            )
        });
        failure.cause = cause.to_string();
        failure.attempts = attempts;
        if attempts == 1 || warned.elapsed() >= WARN_EVERY {
            *warned = now;
            tracing::warn!(
                key,
                cause,
                attempts,
                failing_for_s = failure.since.elapsed().as_secs(),
                retry_in_ms = retry_in.as_millis() as u64,
                "block source: fetch failed; retrying with back-off"
            );
        }
    }

    /// `key` was fetched after failing.
    pub(crate) fn recovered(&self, key: &str, attempts: u32) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((f, _)) = failing.remove(key) {
            tracing::info!(
                key,
                attempts,
                failed_for_s = f.since.elapsed().as_secs(),
                "block source: object readable again"
            );
        }
    }
}
