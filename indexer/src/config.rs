//! `[indexer]` settings.

use serde::Deserialize;

use crate::rules::RuleConfig;
use std::time::Duration;

use crate::source::{Fetch, Retry, SourceConfig};

/// `[indexer]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexerConfig {
    /// Where blocks come from.
    #[serde(default)]
    pub source: SourceConfig,
    /// Cursor name; several indexers on one database need distinct names.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// First block when there is no cursor yet. Without it a new indexer starts at the chain head
    /// (FastNear sources only).
    #[serde(default)]
    pub start_block_height: Option<u64>,
    /// Blocks fetched ahead of processing.
    #[serde(default = "default_preload")]
    pub preload: usize,
    /// fastnear sources: blocks fetched side by side while the stream is behind the final head (`None`: two
    /// per core). From a local or fast source, that many near-lake-framework streamers on consecutive
    /// segments; from a distant one (a request over ~10 ms, as public neardata endpoints), the framework's
    /// own `num_threads`. 1: a single streamer throughout.
    #[serde(default)]
    pub fetch_concurrency: Option<u64>,
    /// Most blocks committed in one DB transaction when the stream runs ahead (each block stays whole).
    #[serde(default = "default_max_batch")]
    pub max_blocks_per_commit: usize,
    /// Event rules.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// s3/dir sources: first wait before fetching a missing or unreadable object again; doubled on each
    /// further failure of that object, up to `source_retry_max_ms`.
    #[serde(default = "default_retry_initial")]
    pub source_retry_initial_ms: u64,
    /// Longest wait between two fetches of a failing object (also between two looks at a block whose
    /// `prev_hash` does not chain onto the cursor).
    #[serde(default = "default_retry_max")]
    pub source_retry_max_ms: u64,
    /// The indexer reports itself stuck (`/ready` 503 with the reason, `/status`, the stalled metric) once
    /// its block source has failed, with no block committed, for this long.
    #[serde(default = "default_stuck_after")]
    pub stuck_after_secs: u64,
    /// `payouts replay`: fetches of one failing object before the replay gives up with its error.
    #[serde(default = "default_replay_attempts")]
    pub replay_max_attempts: u32,
    /// `payouts replay`: how long to wait for blocks past the source's head (`--to` beyond its last block)
    /// before failing; `None`: wait, logging progress (`--wait-timeout-secs` sets it).
    #[serde(default)]
    pub replay_wait_timeout_secs: Option<u64>,
}

fn default_stream() -> String {
    "main".into()
}
fn default_preload() -> usize {
    100
}
fn default_max_batch() -> usize {
    50
}
fn default_retry_initial() -> u64 {
    250
}
fn default_retry_max() -> u64 {
    10_000
}
fn default_stuck_after() -> u64 {
    60
}
fn default_replay_attempts() -> u32 {
    6
}

impl Default for IndexerConfig {
    fn default() -> Self {
        Self {
            source: SourceConfig::default(),
            stream: default_stream(),
            start_block_height: None,
            preload: default_preload(),
            fetch_concurrency: None,
            max_blocks_per_commit: default_max_batch(),
            rules: vec![],
            source_retry_initial_ms: default_retry_initial(),
            source_retry_max_ms: default_retry_max(),
            stuck_after_secs: default_stuck_after(),
            replay_max_attempts: default_replay_attempts(),
            replay_wait_timeout_secs: None,
        }
    }
}

impl IndexerConfig {
    /// Follows the neardata endpoint `endpoint` (`mainnet`, `testnet` or a URL such as the devnet's), every
    /// other setting at its default.
    pub fn fastnear(endpoint: impl Into<String>) -> Self {
        Self {
            source: SourceConfig::Fastnear {
                endpoint: endpoint.into(),
            },
            ..Self::default()
        }
    }

    /// How the stream reads ahead; `until`: the last block wanted, when known.
    pub fn fetch(&self, until: Option<u64>) -> Fetch {
        Fetch {
            preload: self.preload,
            concurrency: self.fetch_concurrency,
            until,
            retry: self.retry(),
            max_attempts: None,
        }
    }

    /// The back-off between fetches of a failing object.
    pub fn retry(&self) -> Retry {
        Retry {
            initial: Duration::from_millis(self.source_retry_initial_ms),
            max: Duration::from_millis(self.source_retry_max_ms),
        }
    }

    /// Checks every value; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        self.source.validate()?;
        if self.stream.trim().is_empty() {
            return Err("indexer.stream: must not be empty".into());
        }
        if self.preload == 0 || self.max_blocks_per_commit == 0 {
            return Err("indexer.preload / max_blocks_per_commit: must be at least 1".into());
        }
        if self.source_retry_initial_ms == 0
            || self.source_retry_max_ms < self.source_retry_initial_ms
        {
            return Err(
                "indexer.source_retry_initial_ms / source_retry_max_ms: need 0 < initial <= max"
                    .into(),
            );
        }
        if self.stuck_after_secs == 0 || self.replay_max_attempts == 0 {
            return Err(
                "indexer.stuck_after_secs / replay_max_attempts: must be at least 1".into(),
            );
        }
        if self
            .fetch_concurrency
            .is_some_and(|n| !(1..=64).contains(&n))
        {
            return Err("indexer.fetch_concurrency: must be between 1 and 64".into());
        }
        crate::rules::compile(&self.rules).map_err(|e| e.to_string())?;
        Ok(())
    }
}
