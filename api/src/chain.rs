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
    /// `ft_metadata` per token contract: read once, kept for the process's life (see
    /// [`Chain::token_meta`]).
    metadata: Mutex<std::collections::HashMap<String, TokenMeta>>,
    /// The network's chain id: given at start-up, else the node's `status` answer (kept once read).
    chain_id: Mutex<Option<String>>,
}

impl Chain {
    pub(crate) fn new(
        rpc: Option<Arc<RpcPool>>,
        timeout: Duration,
        ttl: Duration,
        chain_id: Option<String>,
    ) -> Self {
        Self {
            rpc,
            timeout,
            ttl,
            head: Mutex::new(None),
            at_height: Mutex::new(None),
            metadata: Mutex::new(std::collections::HashMap::new()),
            chain_id: Mutex::new(chain_id),
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

/// What the dashboard needs of a token's NEP-148 metadata to show its amounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenMeta {
    /// `ft_metadata.symbol`, cleaned for display ([`clean_symbol`]); `None` when the contract gives none.
    pub(crate) symbol: Option<String>,
    /// `ft_metadata.decimals`.
    pub(crate) decimals: u8,
}

/// Longest symbol shown, in characters (NEP-148 sets no bound; real ones are a few letters).
const MAX_SYMBOL_CHARS: usize = 16;

/// A symbol as the chain gave it, without control or invisible characters (a symbol is the contract
/// owner's text: it must not reorder or hide what is shown next to it), trimmed and cut short. `None` when
/// nothing is left.
pub(crate) fn clean_symbol(raw: &str) -> Option<String> {
    let s: String = raw
        .chars()
        .filter(|c| !c.is_control() && !crate::text::is_invisible(*c))
        .collect();
    let s: String = s.trim().chars().take(MAX_SYMBOL_CHARS).collect();
    let s = s.trim_end().to_string();
    (!s.is_empty()).then_some(s)
}

impl Chain {
    /// The token's `ft_metadata` (symbol and decimals), cached for the process's life (a token's metadata
    /// does not change in practice; a failed read is not kept, so it is tried again); `None` when the chain
    /// cannot tell (no RPC, no answer, not a NEP-148 contract).
    pub(crate) async fn token_meta(&self, token: &str) -> Option<TokenMeta> {
        if let Some(m) = self.metadata.lock().await.get(token) {
            return Some(m.clone());
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
            #[serde(default)]
            symbol: Option<String>,
        }
        let m = match serde_json::from_slice::<Metadata>(&c.result) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, token, "ft_metadata answer is not NEP-148 metadata");
                return None;
            }
        };
        let meta = TokenMeta {
            symbol: m.symbol.as_deref().and_then(clean_symbol),
            decimals: m.decimals,
        };
        self.metadata
            .lock()
            .await
            .insert(token.to_string(), meta.clone());
        Some(meta)
    }

    /// The token's `ft_metadata.decimals` ([`Chain::token_meta`]).
    pub(crate) async fn decimals(&self, token: &str) -> Option<u8> {
        self.token_meta(token).await.map(|m| m.decimals)
    }
}

impl Chain {
    /// The chain id (`mainnet`, `testnet`, …): the one given at start-up, else what the node's `status`
    /// reports (kept once read; a failed read is tried again next time). `None` when neither tells.
    pub(crate) async fn chain_id(&self) -> Option<String> {
        let mut slot = self.chain_id.lock().await;
        if let Some(id) = slot.as_ref() {
            return Some(id.clone());
        }
        let rpc = self.rpc.as_ref()?;
        match rpc
            .call(
                &near_jsonrpc_client::methods::status::RpcStatusRequest,
                self.timeout,
            )
            .await
        {
            Ok(Ok(status)) => {
                *slot = Some(status.chain_id.clone());
                Some(status.chain_id)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = ?e, "status RPC call failed");
                None
            }
            Err(e) => {
                tracing::debug!(error = %e.message, "status RPC call failed");
                None
            }
        }
    }
}

/// Shared handle.
pub(crate) type SharedChain = Arc<Chain>;

#[cfg(test)]
mod tests {
    use super::clean_symbol;

    #[test]
    fn symbols_are_cleaned_for_display() {
        assert_eq!(clean_symbol("FT").as_deref(), Some("FT"));
        assert_eq!(clean_symbol("  wNEAR \n").as_deref(), Some("wNEAR"));
        assert_eq!(clean_symbol("US\u{202E}DC").as_deref(), Some("USDC"));
        assert_eq!(clean_symbol("\u{200B}\t"), None);
        assert_eq!(clean_symbol(""), None);
        assert_eq!(
            clean_symbol("ABCDEFGHIJKLMNOPQRSTUVWXYZ").as_deref(),
            Some("ABCDEFGHIJKLMNOP")
        );
    }
}
