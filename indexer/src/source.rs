//! Where blocks come from: the near-lake-framework streamer over FastNear (neardata HTTP: mainnet, testnet or
//! the devnet), NEAR Lake S3 (optionally an S3-compatible endpoint), or a directory in the Lake S3 layout
//! (`{height:012}/block.json`, `shard_{id}.json`) read through the same S3 client interface.
//!
//! S3 and dir sources are streamed by our own loop ([`crate::lake`]) over near-lake-framework's `S3Client`
//! (its `LakeS3Client` for S3) and its block types, not by the framework's `streamer()`: the framework retries
//! a missing or unparsable object in a loop with no pause and logs it only at debug level (3,651 GETs of one
//! missing object in 8 s, at 100 % of a core, silently), and restarts itself every 200 ms on a block whose
//! `prev_hash` does not chain, so neither shows to its caller. Our loop backs off, logs at warn with the
//! object key, counts each failure in [`SourceHealth`] and gives up after `max_attempts` when asked to
//! (replays); chain continuity is checked by the caller on what it receives.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use near_lake_framework::near_indexer_primitives::StreamerMessage;
use near_lake_framework::s3::client::{GetObjectBytesError, ListCommonPrefixesError, S3Client};
use near_lake_framework::LakeS3Client;
use serde::Deserialize;
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;

use crate::error::IndexerError;
pub use crate::health::{Failure, Retry, SourceHealth};

/// `[indexer.source]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// neardata HTTP. `endpoint` is `mainnet`, `testnet` or a URL such as the devnet's `http://127.0.0.1:3030`.
    Fastnear {
        /// `mainnet`, `testnet`, or a base URL.
        endpoint: String,
    },
    /// NEAR Lake on S3 (AWS credentials from the usual environment / profile).
    S3 {
        /// Bucket, e.g. `near-lake-data-mainnet`.
        bucket: String,
        /// Region, e.g. `eu-central-1`.
        region: String,
        /// Custom S3-compatible endpoint (MinIO, …).
        #[serde(default)]
        endpoint: Option<String>,
    },
    /// A directory in the Lake S3 layout, e.g. the devnet's `lake_dir`.
    Dir {
        /// The directory.
        path: PathBuf,
    },
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig::Fastnear {
            endpoint: "http://127.0.0.1:3030".into(),
        }
    }
}

impl SourceConfig {
    /// Checks the values; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            SourceConfig::Fastnear { endpoint } => {
                let ok = endpoint == "mainnet"
                    || endpoint == "testnet"
                    || endpoint.starts_with("http://")
                    || endpoint.starts_with("https://");
                if !ok {
                    return Err(format!(
                        "indexer.source.endpoint: `{endpoint}` is not `mainnet`, `testnet` or an http(s) URL"
                    ));
                }
            }
            SourceConfig::S3 {
                bucket,
                region,
                endpoint,
            } => {
                if bucket.is_empty() || region.is_empty() {
                    return Err("indexer.source.bucket / region: must not be empty".into());
                }
                if let Some(e) = endpoint {
                    if !(e.starts_with("http://") || e.starts_with("https://")) {
                        return Err(format!(
                            "indexer.source.endpoint: `{e}` is not an http(s) URL"
                        ));
                    }
                }
            }
            SourceConfig::Dir { path } => {
                if !path.is_dir() {
                    return Err(format!(
                        "indexer.source.path: {} is not a directory",
                        path.display()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A running streamer: its task and the channel of blocks, in height order.
///
/// The streamer runs on a small runtime of its own, shut down when the `Stream` drops: near-lake-framework
/// spawns fetch tasks that outlive an aborted streamer and panic once nobody receives their blocks, so they
/// must be dropped with it rather than left detached.
pub struct Stream {
    /// The streamer task; it ends only on error (the message says why).
    pub task: JoinHandle<Result<(), String>>,
    /// Blocks.
    pub blocks: Receiver<StreamerMessage>,
    /// What the source's fetches went through (failing objects, errors, the highest height listed).
    pub health: Arc<SourceHealth>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(rt) = self.runtime.take() {
            // Does not block: safe inside async code.
            rt.shutdown_background();
        }
    }
}

/// How a stream reads ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetch {
    /// Blocks fetched ahead of processing (`[indexer] preload`).
    pub preload: usize,
    /// fastnear: streamers fetching side by side while catching up (`[indexer] fetch_concurrency`);
    /// `None`: [`default_concurrency`].
    pub concurrency: Option<u64>,
    /// Last block wanted, when known (replays). A fastnear stream fetches nothing past it ahead of time
    /// (only when `until` itself is missing does it go on to the next block); an s3/dir stream nothing past
    /// it at all.
    pub until: Option<u64>,
    /// s3/dir: the wait between fetches of a failing object.
    pub retry: Retry,
    /// s3/dir: fetches of one failing object before the stream ends with its error (`None`: never).
    pub max_attempts: Option<u32>,
}

impl Fetch {
    /// Reads `preload` blocks ahead, default concurrency, no end, default back-off, never gives up.
    pub fn ahead(preload: usize) -> Self {
        Self {
            preload,
            concurrency: None,
            until: None,
            retry: Retry::default(),
            max_attempts: None,
        }
    }
}

/// Streamers a fastnear source runs side by side while catching up, unless configured: two per core
/// (near-lake-framework's own default for its `num_threads`).
pub fn default_concurrency() -> u64 {
    std::thread::available_parallelism().map_or(2, |n| n.get() as u64) * 2
}

/// Starts streaming blocks from `start` on.
pub async fn start(
    source: &SourceConfig,
    start: u64,
    fetch: Fetch,
) -> Result<Stream, IndexerError> {
    start_watched(source, start, fetch, Arc::new(SourceHealth::default())).await
}

/// [`start`], recording into `health` (kept across restarts of the stream, e.g. the indexer's metrics).
pub async fn start_watched(
    source: &SourceConfig,
    start: u64,
    fetch: Fetch,
    health: Arc<SourceHealth>,
) -> Result<Stream, IndexerError> {
    let preload = fetch.preload.max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lake-streamer")
        .enable_all()
        .build()
        .map_err(|e| IndexerError::Source(format!("cannot start the streamer runtime: {e}")))?;
    let lake = match source {
        SourceConfig::S3 {
            bucket,
            region,
            endpoint,
        } => {
            let shared = aws_config::from_env()
                .region(aws_config::Region::new(region.clone()))
                .load()
                .await;
            let mut s3 = aws_sdk_s3::config::Builder::from(&shared);
            if let Some(endpoint) = endpoint {
                s3 = s3.endpoint_url(endpoint).force_path_style(true);
            }
            let client: Arc<dyn S3Client> = Arc::new(LakeS3Client::from_conf(s3.build()));
            Some(crate::lake::Lake {
                client,
                bucket: bucket.clone(),
                poll: Duration::from_secs(1),
            })
        }
        SourceConfig::Dir { path } => Some(crate::lake::Lake {
            client: Arc::new(DirS3Client::new(path)),
            bucket: "local".into(),
            poll: Duration::from_millis(200),
        }),
        SourceConfig::Fastnear { .. } => None,
    };
    // Everything the stream spawns lands on the streamer's runtime.
    let entered = runtime.enter();
    let (task, blocks) = match lake {
        Some(lake) => {
            let (tx, rx) = tokio::sync::mpsc::channel(preload);
            let plan = crate::lake::Plan {
                from: start,
                until: fetch.until,
                preload,
                retry: fetch.retry,
                max_attempts: fetch.max_attempts,
            };
            let health = Arc::clone(&health);
            let task = tokio::spawn(async move { crate::lake::run(lake, plan, health, tx).await });
            (task, rx)
        }
        None => {
            let SourceConfig::Fastnear { endpoint } = source else {
                return Err(IndexerError::Source("no client for this source".into()));
            };
            let concurrency = fetch.concurrency.unwrap_or_else(default_concurrency);
            let plan = crate::fastnear::Plan::new(
                fastnear_url(endpoint),
                concurrency,
                preload,
                fetch.until,
            );
            let (tx, rx) = tokio::sync::mpsc::channel(preload);
            let task = tokio::spawn(async move { crate::fastnear::run(plan, start, tx).await });
            (task, rx)
        }
    };
    drop(entered);
    let task = tokio::spawn(async move {
        match task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(format!("streamer task stopped: {e}")),
        }
    });
    Ok(Stream {
        task,
        blocks,
        health,
        runtime: Some(runtime),
    })
}

/// Serves a local directory in the Lake S3 layout to near-lake-framework's S3 provider.
#[derive(Debug, Clone)]
pub struct DirS3Client {
    root: Arc<PathBuf>,
}

impl DirS3Client {
    /// Serves `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: Arc::new(root.to_path_buf()),
        }
    }
}

#[async_trait]
impl S3Client for DirS3Client {
    async fn get_object_bytes(
        &self,
        _bucket: &str,
        key: &str,
    ) -> Result<Vec<u8>, GetObjectBytesError> {
        if key.split('/').any(|part| part == ".." || part.is_empty()) {
            let e = std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("bad key {key}"));
            return Err(GetObjectBytesError(Arc::new(e)));
        }
        tokio::fs::read(self.root.join(key))
            .await
            .map_err(|e| GetObjectBytesError(Arc::new(e)))
    }

    async fn list_common_prefixes(
        &self,
        _bucket: &str,
        start_after: &str,
    ) -> Result<Vec<String>, ListCommonPrefixesError> {
        let root = Arc::clone(&self.root);
        let start_after = start_after.to_string();
        let listed = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<String>> {
            let mut names: Vec<String> = std::fs::read_dir(&*root)?
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // S3 `StartAfter` compares whole keys: "000000000010/" sorts after "000000000010".
                .filter(|name| format!("{name}/") > start_after)
                .collect();
            names.sort();
            names.truncate(1000);
            Ok(names)
        })
        .await
        .map_err(|e| ListCommonPrefixesError(Arc::new(std::io::Error::other(e.to_string()))))?;
        listed.map_err(|e| ListCommonPrefixesError(Arc::new(e)))
    }
}

/// The neardata base URL of a FastNear source.
pub fn fastnear_url(endpoint: &str) -> String {
    match endpoint {
        "mainnet" => "https://mainnet.neardata.xyz".into(),
        "testnet" => "https://testnet.neardata.xyz".into(),
        url => url.trim_end_matches('/').into(),
    }
}
