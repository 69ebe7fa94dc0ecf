//! [`AppState`]: what every handler shares — the pool, the configuration, the token digests, what the binary
//! hands in of the workers it runs in the same process (their metrics registry, the indexer's position), and
//! small caches. The API knows no worker crate: the binary wires them in through [`IndexerProbe`] and a
//! `prometheus-client` registry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use payouts_near::prom::Registry;
use payouts_store::PgPool;
use tokio_util::sync::CancellationToken;

use crate::auth::Tokens;
use crate::chain::{Chain, SharedChain};
use crate::config::ApiConfig;
use crate::error::Error;
use crate::metrics::HttpMetrics;

/// The indexer stream name when none is given (the indexer's own default, `indexer.stream`).
pub const DEFAULT_STREAM: &str = "main";

/// Shared state of the router. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("listen", &self.inner.config.listen)
            .field("tokens", &self.inner.tokens)
            .field("indexer_in_process", &self.inner.indexer_probe.is_some())
            .field("worker_metrics", &self.inner.registry.is_some())
            .finish()
    }
}

pub(crate) struct Inner {
    /// Manual-send inserts and admin writes (in `payouts run`, the pool the distributor uses too).
    pub(crate) pool: PgPool,
    /// Reads (`/status`, `/claims`, `/metrics`, `/ready`, `/incidents`): a small pool of their own, so
    /// readers queue among themselves and can never take the distributor's connections.
    pub(crate) read_pool: PgPool,
    /// Host allowlist and rate limits.
    pub(crate) guard: crate::guard::Guard,
    /// `/metrics` figures read from the database, with when they were read.
    pub(crate) metrics_cache: tokio::sync::Mutex<Option<(Instant, crate::figures::DbFigures)>>,
    pub(crate) config: ApiConfig,
    pub(crate) tokens: Tokens,
    /// The metrics of the workers running in this process, registered by the binary.
    pub(crate) registry: Option<Arc<Registry>>,
    /// The position of the indexer running in this process.
    pub(crate) indexer_probe: Option<Arc<dyn IndexerProbe>>,
    /// The indexer stream (cursor name) `/status`, `/metrics` and replays refer to.
    pub(crate) stream: String,
    /// Tokens the indexer's rules pay (`[[indexer.rules]]`), listed by `GET /tokens` after the allowed ones.
    pub(crate) rule_tokens: Vec<String>,
    pub(crate) chain: SharedChain,
    pub(crate) http: Arc<HttpMetrics>,
    pub(crate) status_cache: tokio::sync::Mutex<Option<(Instant, axum::body::Bytes)>>,
    /// Group-commit workers of `POST /send-ft`, started on first use (inside the runtime).
    pub(crate) batcher: std::sync::OnceLock<crate::batch::Batcher>,
    /// Cancelled when the server shuts down: stops background work started by requests.
    pub(crate) background: CancellationToken,
    /// The NEAR JSON-RPC for the campaign checks (`storage_balance_of`, `ft_balance_of`).
    pub(crate) rpc: Option<Arc<payouts_near::RpcPool>>,
    /// Whether the distributor registers receivers (`distributor.register_receivers`); `None`: not told.
    pub(crate) distributor_registers: Option<bool>,
    /// The treasury account paying (`distributor.treasury`); `None`: not told.
    pub(crate) treasury: Option<String>,
    /// Claim counts of settled campaigns, keyed by id with the `updated_at` they were read at
    /// (`payouts_store::campaigns::summary`: they cannot change without it moving).
    pub(crate) settled_counts: std::sync::Mutex<
        std::collections::HashMap<
            i64,
            (
                chrono::DateTime<chrono::Utc>,
                payouts_store::campaigns::summary::ClaimCounts,
            ),
        >,
    >,
}

/// Builds an [`AppState`].
pub struct AppStateBuilder {
    pool: PgPool,
    read_pool: Option<PgPool>,
    config: ApiConfig,
    registry: Option<Arc<Registry>>,
    indexer_probe: Option<Arc<dyn IndexerProbe>>,
    stream: Option<String>,
    rule_tokens: Vec<String>,
    rpc: Vec<payouts_near::RpcEndpointConfig>,
    chain_id: Option<String>,
    distributor_registers: Option<bool>,
    treasury: Option<String>,
}

/// What `/status` shows of an indexer running in this process: implemented by the binary over the indexer's
/// own counters.
pub trait IndexerProbe: Send + Sync + 'static {
    /// The indexer's position now.
    fn position(&self) -> IndexerPosition;
}

/// A point-in-time position of an in-process indexer (0: not seen yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexerPosition {
    /// Last committed block height.
    pub last_height: u64,
    /// Highest block height seen from the source.
    pub head_seen: u64,
    /// Timestamp of the last committed block, nanoseconds since the epoch.
    pub last_block_timestamp_nanos: u64,
    /// Failed fetches and listings of the block source so far.
    pub source_errors: u64,
}

impl IndexerPosition {
    /// Seconds since the last committed block's timestamp (display only).
    pub fn lag_seconds(&self, now_nanos: u64) -> f64 {
        // Display only: precision loss is fine.
        now_nanos.saturating_sub(self.last_block_timestamp_nanos) as f64 / 1e9
    }
}

impl std::fmt::Debug for AppStateBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppStateBuilder")
            .field("listen", &self.config.listen)
            .finish_non_exhaustive()
    }
}

impl AppStateBuilder {
    /// A separate pool for the API's reads (default: the main pool). `payouts api` and `payouts run` give
    /// one of `api.read_connections` connections.
    pub fn read_pool(mut self, pool: PgPool) -> Self {
        self.read_pool = Some(pool);
        self
    }

    /// The metrics of the workers running in this process (the binary registers their collectors): encoded
    /// on `/metrics` before the API's own series.
    pub fn metrics_registry(mut self, registry: Arc<Registry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The indexer running in this process: its head and lag go to `/status`.
    pub fn indexer_probe(mut self, probe: Arc<dyn IndexerProbe>) -> Self {
        self.indexer_probe = Some(probe);
        self
    }

    /// The indexer stream (`indexer.stream`, the cursor name) that `/status` and `/metrics` read and that
    /// `POST /admin/replay` queues jobs for (default `main`).
    pub fn indexer_stream(mut self, stream: impl Into<String>) -> Self {
        self.stream = Some(stream.into());
        self
    }

    /// The tokens the indexer's rules pay (`[[indexer.rules]]` `token`): `GET /tokens` lists them after
    /// `api.allowed_tokens`, so the dashboard can show their claims in token units too.
    pub fn rule_tokens(mut self, tokens: impl IntoIterator<Item = String>) -> Self {
        self.rule_tokens = tokens.into_iter().collect();
        self
    }

    /// The NEAR JSON-RPC used for the chain head when no indexer runs in this process.
    pub fn rpc_url(mut self, url: impl Into<String>) -> Self {
        self.rpc = vec![payouts_near::RpcEndpointConfig::new(url)];
        self
    }

    /// [`AppStateBuilder::rpc_url`] with a pool of endpoints (`[[network.rpc]]`: failover, header keys).
    pub fn rpc_endpoints(mut self, endpoints: Vec<payouts_near::RpcEndpointConfig>) -> Self {
        self.rpc = endpoints;
        self
    }

    /// The network's chain id (`network.chain_id`): picks the default explorer links
    /// ([`crate::explorer::default_explorer_tx_url`]). Without it the node's `status` answer is used.
    pub fn chain_id(mut self, id: impl Into<String>) -> Self {
        self.chain_id = Some(id.into());
        self
    }

    /// What the distributor does with receivers not registered with the token
    /// (`distributor.register_receivers`): campaign dry runs check registrations only when it does not
    /// register them, and `retry-failed` re-queues "not registered" failures only when it does. Unset: no
    /// registration check, and such failures are not re-queued.
    pub fn distributor_registers(mut self, registers: bool) -> Self {
        self.distributor_registers = Some(registers);
        self
    }

    /// The treasury account the distributor pays from: campaign dry runs compare its token balance
    /// (`ft_balance_of`) with the total. Unset: no balance check.
    pub fn treasury(mut self, account: impl Into<String>) -> Self {
        self.treasury = Some(account.into());
        self
    }

    /// Validates the configuration and reads the token secrets.
    pub fn build(self) -> Result<AppState, Error> {
        self.config.validate().map_err(Error::Config)?;
        let tokens = Tokens::load(&self.config)?;
        let stream = self.stream.unwrap_or_else(|| DEFAULT_STREAM.to_string());
        let rpc = if self.rpc.is_empty() {
            None
        } else {
            Some(Arc::new(
                payouts_near::RpcPool::new(&self.rpc).map_err(|e| Error::Config(e.to_string()))?,
            ))
        };
        let chain = Chain::new(
            rpc.clone(),
            Duration::from_millis(self.config.rpc_timeout_ms),
            Duration::from_millis(self.config.status_cache_ms),
            self.chain_id,
        );
        Ok(AppState {
            inner: Arc::new(Inner {
                read_pool: self.read_pool.unwrap_or_else(|| self.pool.clone()),
                pool: self.pool,
                guard: crate::guard::Guard::new(&self.config),
                metrics_cache: tokio::sync::Mutex::new(None),
                config: self.config,
                tokens,
                registry: self.registry,
                indexer_probe: self.indexer_probe,
                stream,
                rule_tokens: self.rule_tokens,
                chain: Arc::new(chain),
                http: Arc::new(HttpMetrics::default()),
                status_cache: tokio::sync::Mutex::new(None),
                batcher: std::sync::OnceLock::new(),
                background: CancellationToken::new(),
                rpc,
                distributor_registers: self.distributor_registers,
                treasury: self.treasury,
                settled_counts: std::sync::Mutex::default(),
            }),
        })
    }
}

impl AppState {
    /// Starts building a state on `pool` with `config`.
    pub fn builder(pool: PgPool, config: ApiConfig) -> AppStateBuilder {
        AppStateBuilder {
            pool,
            read_pool: None,
            config,
            registry: None,
            indexer_probe: None,
            stream: None,
            rule_tokens: Vec::new(),
            rpc: Vec::new(),
            chain_id: None,
            distributor_registers: None,
            treasury: None,
        }
    }

    /// A state with no in-process indexer or distributor and no RPC: reads everything from the database.
    pub fn new(pool: PgPool, config: ApiConfig) -> Result<Self, Error> {
        Self::builder(pool, config).build()
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The configuration.
    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    /// The HTTP request metrics.
    pub fn http_metrics(&self) -> &HttpMetrics {
        &self.inner.http
    }

    /// The manual-send insert workers (started on first use).
    pub(crate) fn batcher(&self) -> &crate::batch::Batcher {
        self.inner.batcher.get_or_init(|| {
            let cfg = &self.inner.config;
            crate::batch::Batcher::start(
                self.inner.pool.clone(),
                cfg.send_workers,
                cfg.send_batch_max,
            )
        })
    }

    /// Stops background work started by requests.
    pub fn shutdown_background(&self) {
        self.inner.background.cancel();
    }
}
