//! Where blocks come from: the near-lake-framework streamer over FastNear (neardata HTTP: mainnet, testnet or
//! the devnet), NEAR Lake S3 (optionally an S3-compatible endpoint), or a directory in the Lake S3 layout
//! (`{height:012}/block.json`, `shard_{id}.json`) read through the same S3 code path.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use near_lake_framework::near_indexer_primitives::StreamerMessage;
use near_lake_framework::s3::client::{GetObjectBytesError, ListCommonPrefixesError, S3Client};
use near_lake_framework::LakeConfigBuilder;
use serde::Deserialize;
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;

use crate::error::IndexerError;

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
    /// (only when `until` itself is missing does it go on to the next block). Other sources ignore it.
    pub until: Option<u64>,
}

impl Fetch {
    /// Reads `preload` blocks ahead, default concurrency, no end.
    pub fn ahead(preload: usize) -> Self {
        Self {
            preload,
            concurrency: None,
            until: None,
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
    let preload = fetch.preload.max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lake-streamer")
        .enable_all()
        .build()
        .map_err(|e| IndexerError::Source(format!("cannot start the streamer runtime: {e}")))?;
    let s3_config = match source {
        SourceConfig::S3 {
            region,
            endpoint: Some(endpoint),
            ..
        } => {
            let shared = aws_config::from_env()
                .region(aws_config::Region::new(region.clone()))
                .load()
                .await;
            Some(
                aws_sdk_s3::config::Builder::from(&shared)
                    .endpoint_url(endpoint)
                    .force_path_style(true)
                    .build(),
            )
        }
        _ => None,
    };
    // Everything the framework spawns lands on the streamer's runtime.
    let entered = runtime.enter();
    let (task, blocks) = match source {
        SourceConfig::Fastnear { endpoint } => {
            let concurrency = fetch.concurrency.unwrap_or_else(default_concurrency);
            let plan = crate::fastnear::Plan::new(
                crate::runner::fastnear_url(endpoint),
                concurrency,
                preload,
                fetch.until,
            );
            let (tx, rx) = tokio::sync::mpsc::channel(preload);
            let task = tokio::spawn(async move { crate::fastnear::run(plan, start, tx).await });
            (task, rx)
        }
        SourceConfig::S3 { bucket, region, .. } => {
            let mut builder = LakeConfigBuilder::default()
                .s3_bucket_name(bucket)
                .s3_region_name(region)
                .start_block_height(start)
                .blocks_preload_pool_size(preload);
            if let Some(s3) = s3_config {
                builder = builder.s3_config(s3);
            }
            let cfg = builder
                .build()
                .map_err(|e| IndexerError::Source(e.to_string()))?;
            lake(near_lake_framework::streamer(cfg))
        }
        SourceConfig::Dir { path } => {
            let cfg = LakeConfigBuilder::default()
                .s3_bucket_name("local")
                .s3_region_name("local")
                .start_block_height(start)
                .blocks_preload_pool_size(preload)
                .s3_client(DirS3Client::new(path))
                .build()
                .map_err(|e| IndexerError::Source(e.to_string()))?;
            lake(near_lake_framework::streamer(cfg))
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
        runtime: Some(runtime),
    })
}

/// The framework's streamer task, its error as text.
fn lake<E: std::fmt::Display + Send + 'static>(
    (task, blocks): (JoinHandle<Result<(), E>>, Receiver<StreamerMessage>),
) -> (JoinHandle<Result<(), String>>, Receiver<StreamerMessage>) {
    let task = tokio::spawn(async move {
        match task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("streamer task stopped: {e}")),
        }
    });
    (task, blocks)
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
