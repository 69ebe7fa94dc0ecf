//! The indexer worker: stream blocks from the cursor on, scan them, commit them with the cursor.
//! Never skips a block: a failed commit is retried (with backoff) until it succeeds or shutdown.

use std::sync::Arc;
use std::time::Duration;

use near_lake_framework::fastnear::fetchers::fetch_block_by_finality;
use near_lake_framework::near_indexer_primitives::types::Finality;
use near_lake_framework::FastNearClient;
use payouts_store::cursor::read_cursor;
use payouts_store::{PgPool, StoreError};
use tokio_util::sync::CancellationToken;

use crate::apply::commit_blocks;
use crate::config::IndexerConfig;
use crate::error::IndexerError;
use crate::metrics::IndexerMetrics;
use crate::rules::{compile, Rule};
use crate::scan::{scan_block, BlockFindings};
use crate::source::{self, SourceConfig};

/// How often the chain head is polled (FastNear sources).
const HEAD_POLL: Duration = Duration::from_secs(3);

/// A configured indexer.
pub struct Indexer {
    pool: PgPool,
    cfg: IndexerConfig,
    rules: Vec<Rule>,
    metrics: Arc<IndexerMetrics>,
}

/// The neardata base URL of a FastNear source.
pub fn fastnear_url(endpoint: &str) -> String {
    match endpoint {
        "mainnet" => "https://mainnet.neardata.xyz".into(),
        "testnet" => "https://testnet.neardata.xyz".into(),
        url => url.trim_end_matches('/').into(),
    }
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

    /// Runs until `shutdown` is cancelled (returns `Ok`) or the stream fails (returns the error).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), IndexerError> {
        let start = self.start_height().await?;
        tracing::info!(stream = %self.cfg.stream, start, "indexer starting");
        let mut stream = source::start(&self.cfg.source, start, self.cfg.fetch(None)).await?;
        let head_watch = self.watch_head(shutdown.child_token());
        let max = self.cfg.max_blocks_per_commit;
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                m = stream.blocks.recv() => m,
            };
            let Some(first) = first else {
                let why = match (&mut stream.task).await {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) => "stream ended".into(),
                    Err(e) => e.to_string(),
                };
                return Err(IndexerError::Source(why));
            };
            let mut batch = vec![self.scan(&first)];
            while batch.len() < max {
                match stream.blocks.try_recv() {
                    Ok(m) => batch.push(self.scan(&m)),
                    Err(_) => break,
                }
            }
            if !self.commit_with_retry(&batch, &shutdown).await? {
                break;
            }
        }
        stream.task.abort();
        if let Some(task) = head_watch {
            task.abort();
        }
        tracing::info!(stream = %self.cfg.stream, "indexer stopped");
        Ok(())
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
