//! The chain head as the status page shows it: from the in-process indexer when this process runs one,
//! otherwise from the configured NEAR JSON-RPC (`block` with finality `final`), with a short timeout and a
//! cache so a busy dashboard costs at most one RPC call per cache period. An unreachable node shows as
//! "unknown", never as an error of the page.

use std::sync::Arc;
use std::time::{Duration, Instant};

use near_jsonrpc_client::methods::block::RpcBlockRequest;
use near_primitives::types::{BlockId, BlockReference, Finality};
use payouts_near::RpcPool;
use tokio::sync::Mutex;

/// A block height and its timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockPoint {
    /// Height.
    pub height: u64,
    /// Block timestamp, nanoseconds since the Unix epoch.
    pub timestamp_nanos: u64,
}

type Cached<T> = Option<(Instant, T)>;

/// Reads and caches the chain head and the timestamp of the indexed block.
pub(crate) struct Chain {
    rpc: Option<Arc<RpcPool>>,
    timeout: Duration,
    ttl: Duration,
    head: Mutex<Cached<Result<BlockPoint, String>>>,
    at_height: Mutex<Option<(u64, Option<BlockPoint>)>>,
    /// `ft_metadata.decimals` per token contract: read once, kept for the process's life (a token's
    /// decimals do not change; a failed read is not kept, so it is tried again).
    decimals: Mutex<std::collections::HashMap<String, u8>>,
}

impl Chain {
    pub(crate) fn new(rpc: Option<Arc<RpcPool>>, timeout: Duration, ttl: Duration) -> Self {
        Self {
            rpc,
            timeout,
            ttl,
            head: Mutex::new(None),
            at_height: Mutex::new(None),
            decimals: Mutex::new(std::collections::HashMap::new()),
        }
    }

    async fn block(&self, reference: BlockReference) -> Result<BlockPoint, String> {
        let rpc = self
            .rpc
            .as_ref()
            .ok_or_else(|| "no RPC endpoint configured".to_string())?;
        let req = RpcBlockRequest {
            block_reference: reference,
        };
        match rpc.call(&req, self.timeout).await {
            Err(e) => {
                // Scrubbed of secrets by the pool; still only in the debug log.
                tracing::debug!(error = %e.message, "chain head RPC call failed");
                Err("the NEAR RPC gave no answer".to_string())
            }
            Ok(Err(e)) => {
                tracing::debug!(error = ?e, "chain head RPC call failed");
                Err("the NEAR RPC call failed".to_string())
            }
            Ok(Ok(block)) => Ok(BlockPoint {
                height: block.header.height,
                timestamp_nanos: block.header.timestamp_nanosec,
            }),
        }
    }

    /// The final head, cached for the TTL (failures too, so an unreachable node is not hammered).
    /// Concurrent callers share one RPC call.
    pub(crate) async fn head(&self) -> Result<BlockPoint, String> {
        let mut slot = self.head.lock().await;
        if let Some((at, v)) = slot.as_ref() {
            if at.elapsed() < self.ttl {
                return v.clone();
            }
        }
        let v = self.block(BlockReference::Finality(Finality::Final)).await;
        *slot = Some((Instant::now(), v.clone()));
        v
    }

    /// The timestamp of the block at `height` (cached for the last height asked); `None` when unknown.
    pub(crate) async fn block_at(&self, height: u64) -> Option<BlockPoint> {
        let mut slot = self.at_height.lock().await;
        if let Some((h, v)) = slot.as_ref() {
            if *h == height {
                return *v;
            }
        }
        let v = self
            .block(BlockReference::BlockId(BlockId::Height(height)))
            .await
            .ok();
        *slot = Some((height, v));
        v
    }
}

impl Chain {
    /// The token's `ft_metadata.decimals`, cached; `None` when the chain cannot tell (no RPC, no answer,
    /// not a NEP-148 contract).
    pub(crate) async fn decimals(&self, token: &str) -> Option<u8> {
        if let Some(d) = self.decimals.lock().await.get(token) {
            return Some(*d);
        }
        let rpc = self.rpc.as_ref()?;
        let account: near_primitives::types::AccountId = token.parse().ok()?;
        let req = near_jsonrpc_client::methods::query::RpcQueryRequest {
            block_reference: BlockReference::Finality(Finality::Final),
            request: near_primitives::views::QueryRequest::CallFunction {
                account_id: account,
                method_name: "ft_metadata".to_string(),
                args: near_primitives::types::FunctionArgs::from(b"{}".to_vec()),
            },
        };
        let answer = match rpc.call(&req, self.timeout).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::debug!(error = ?e, token, "ft_metadata call failed");
                return None;
            }
            Err(e) => {
                tracing::debug!(error = %e.message, token, "ft_metadata call failed");
                return None;
            }
        };
        let near_jsonrpc_primitives::types::query::QueryResponseKind::CallResult(c) = answer.kind
        else {
            return None;
        };
        #[derive(serde::Deserialize)]
        struct Metadata {
            decimals: u8,
        }
        let d = serde_json::from_slice::<Metadata>(&c.result).ok()?.decimals;
        self.decimals.lock().await.insert(token.to_string(), d);
        Some(d)
    }
}

/// Shared handle.
pub(crate) type SharedChain = Arc<Chain>;
