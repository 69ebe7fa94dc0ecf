//! The s3/dir stream: lists heights in the Lake S3 layout through near-lake-framework's `S3Client`, fetches
//! `block.json` and each `shard_{id}.json`, parses them into the framework's types, and delivers the blocks
//! in height order.
//!
//! Why not the framework's `streamer()`: it retries a missing or unparsable object immediately and forever,
//! logging at debug level only, so a truncated or missing `shard_3.json` spins a core with nothing in the
//! log (and a replay never returns); and on a block whose `prev_hash` does not chain it restarts itself
//! every 200 ms, so the caller never sees the block that breaks the chain. Here each failing object waits
//! [`Retry::delay`] (capped exponential back-off) before it is fetched again, is logged at warn with its key
//! and cause and counted in [`SourceHealth`], and with `max_attempts` the stream ends with that error. Blocks
//! are handed over as listed: the caller checks `prev_hash` (a height missing from the listing is either a
//! skipped height, which still chains, or a hole, which does not).
//!
//! Blocks are fetched by up to `preload` tasks side by side (on the stream's own runtime), each parsing its
//! own objects, and delivered in order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use near_lake_framework::near_indexer_primitives::views::BlockView;
use near_lake_framework::near_indexer_primitives::{IndexerShard, StreamerMessage};
use near_lake_framework::s3::client::S3Client;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::health::{Retry, SourceHealth};

/// Where the objects are.
pub(crate) struct Lake {
    /// The framework's S3 client (or our directory reader behind the same trait).
    pub(crate) client: Arc<dyn S3Client>,
    /// Bucket name (ignored by the directory reader).
    pub(crate) bucket: String,
    /// How long to wait before listing again when nothing new was listed.
    pub(crate) poll: Duration,
}

/// What to stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// First height.
    pub(crate) from: u64,
    /// Last height wanted, when known: nothing past it is fetched but the first listed height after it
    /// (when `until` itself is not listed).
    pub(crate) until: Option<u64>,
    /// Blocks fetched ahead.
    pub(crate) preload: usize,
    /// Back-off between fetches of a failing object.
    pub(crate) retry: Retry,
    /// Fetches of one failing object before the stream ends with its error.
    pub(crate) max_attempts: Option<u32>,
}

type Fetching = JoinHandle<Result<StreamerMessage, String>>;

/// Streams `plan` into `out`. Ends with an error only when an object (or the listing) failed `max_attempts`
/// times; otherwise runs until `out` is closed.
pub(crate) async fn run(
    lake: Lake,
    plan: Plan,
    health: Arc<SourceHealth>,
    out: mpsc::Sender<StreamerMessage>,
) -> Result<(), String> {
    let lake = Arc::new(lake);
    // Next height to list from, heights listed but not yet fetched, fetches in flight (in height order).
    let mut next_list = plan.from;
    let mut listed: VecDeque<u64> = VecDeque::new();
    let mut fetching: VecDeque<Fetching> = VecDeque::new();
    let mut list_failures = 0u32;
    // No listing before this (after one that found nothing new: `poll`; after a failed one: its back-off).
    let mut list_at: Option<Instant> = None;
    // Set once the last block wanted is listed: `until` itself, or else the first height past it (whose
    // `prev_hash` tells the caller whether the heights before it were skipped or are missing).
    let mut listed_all = false;
    loop {
        let due = list_at.is_none_or(|at| Instant::now() >= at);
        if listed.is_empty() && !listed_all && due {
            match list(&lake, next_list).await {
                Ok(heights) => {
                    if list_failures > 0 {
                        health.recovered(&listing_key(next_list), list_failures);
                        list_failures = 0;
                    }
                    for h in heights.into_iter().filter(|h| *h >= next_list) {
                        listed.push_back(h);
                        if plan.until.is_some_and(|u| h >= u) {
                            listed_all = true;
                            break;
                        }
                    }
                    match listed.back() {
                        Some(&last) => {
                            health.listed(last);
                            next_list = last + 1;
                            list_at = None;
                        }
                        None => list_at = Some(Instant::now() + lake.poll),
                    }
                }
                Err(cause) => {
                    list_failures += 1;
                    let delay = plan.retry.delay(list_failures);
                    let key = listing_key(next_list);
                    health.failed(&key, &cause, list_failures, delay);
                    if plan.max_attempts.is_some_and(|m| list_failures >= m) {
                        return Err(gave_up(&key, &cause, list_failures));
                    }
                    list_at = Some(Instant::now() + delay);
                }
            }
        }
        while fetching.len() < plan.preload {
            let Some(height) = listed.pop_front() else {
                break;
            };
            let (lake, health) = (Arc::clone(&lake), Arc::clone(&health));
            fetching.push_back(tokio::spawn(async move {
                fetch_block(&lake, height, plan, &health).await
            }));
        }
        let Some(front) = fetching.pop_front() else {
            if listed_all {
                // Everything wanted is delivered: end only when dropped.
                out.closed().await;
                return Ok(());
            }
            // At the source's head (or its listing failing): look again when due.
            let wake = list_at.unwrap_or_else(Instant::now);
            tokio::select! {
                () = out.closed() => return Ok(()),
                () = tokio::time::sleep_until(wake.into()) => {}
            }
            continue;
        };
        let msg = tokio::select! {
            () = out.closed() => return Ok(()),
            m = front => m.map_err(|e| format!("a fetch task stopped: {e}"))??,
        };
        if out.send(msg).await.is_err() {
            return Ok(());
        }
    }
}

fn listing_key(from: u64) -> String {
    format!("list after {from:012}/")
}

fn gave_up(key: &str, cause: &str, attempts: u32) -> String {
    format!("{key}: {cause} (gave up after {attempts} attempts)")
}

/// Heights whose folder the source lists from `from` on (S3 `StartAfter` of `{from:012}`: `from` included).
async fn list(lake: &Lake, from: u64) -> Result<Vec<u64>, String> {
    let prefixes = lake
        .client
        .list_common_prefixes(&lake.bucket, &format!("{from:012}"))
        .await
        .map_err(|e| error_chain(&*e.0))?;
    let mut heights: Vec<u64> = prefixes
        .iter()
        .filter_map(|p| p.trim_end_matches('/').parse().ok())
        .collect();
    heights.sort_unstable();
    Ok(heights)
}

/// One block: `block.json`, then each of its chunks' `shard_{id}.json`.
async fn fetch_block(
    lake: &Lake,
    height: u64,
    plan: Plan,
    health: &SourceHealth,
) -> Result<StreamerMessage, String> {
    let block: BlockView =
        fetch_object(lake, &format!("{height:012}/block.json"), plan, health).await?;
    let mut shards = Vec::with_capacity(block.chunks.len());
    for chunk in &block.chunks {
        let shard_id: u64 = chunk.shard_id.into();
        let key = format!("{height:012}/shard_{shard_id}.json");
        shards.push(fetch_object::<IndexerShard>(lake, &key, plan, health).await?);
    }
    Ok(StreamerMessage { block, shards })
}

/// Fetches and parses one object, retrying with back-off until it succeeds or `max_attempts` is reached.
async fn fetch_object<T: DeserializeOwned>(
    lake: &Lake,
    key: &str,
    plan: Plan,
    health: &SourceHealth,
) -> Result<T, String> {
    let mut attempts = 0u32;
    loop {
        let got = match lake.client.get_object_bytes(&lake.bucket, key).await {
            Ok(bytes) => serde_json::from_slice::<T>(&bytes)
                .map_err(|e| format!("invalid JSON ({} bytes): {e}", bytes.len())),
            Err(e) => Err(error_chain(&*e.0)),
        };
        match got {
            Ok(value) => {
                if attempts > 0 {
                    health.recovered(key, attempts);
                }
                return Ok(value);
            }
            Err(cause) => {
                attempts += 1;
                let delay = plan.retry.delay(attempts);
                health.failed(key, &cause, attempts, delay);
                if plan.max_attempts.is_some_and(|m| attempts >= m) {
                    return Err(gave_up(key, &cause, attempts));
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// An error and its sources on one line (the AWS SDK's own `Display` is only "service error").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_its_cap() {
        let r = Retry {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(2),
        };
        let waits: Vec<u64> = (1..=6).map(|a| r.delay(a).as_millis() as u64).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 2000, 2000]);
        assert_eq!(r.delay(u32::MAX), Duration::from_secs(2));
    }

    #[test]
    fn an_error_chain_reads_as_one_line() {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "no such key");
        let outer = std::io::Error::other(inner);
        assert_eq!(error_chain(&outer), "no such key");
    }
}
