//! [`AppState`]: what every handler shares — the pool, the configuration, the token digests, the optional
//! in-process indexer and distributor handles, and small caches.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use payouts_distributor::DistributorMetrics;
use payouts_indexer::{IndexerConfig, IndexerMetrics};
use payouts_store::PgPool;
use payouts_webhooks::WebhookMetrics;
use tokio_util::sync::CancellationToken;

use crate::auth::Tokens;
use crate::chain::{Chain, SharedChain};
use crate::config::ApiConfig;
use crate::error::Error;
use crate::metrics::HttpMetrics;
use crate::model::ReplayView;

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
            .field("indexer_in_process", &self.inner.indexer_metrics.is_some())
            .field(
                "distributor_in_process",
                &self.inner.distributor_metrics.is_some(),
            )
            .field("webhooks_in_process", &self.inner.webhook_metrics.is_some())
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
    pub(crate) metrics_cache:
        tokio::sync::Mutex<Option<(Instant, crate::routes::metrics::DbFigures)>>,
    pub(crate) config: ApiConfig,
    pub(crate) tokens: Tokens,
    pub(crate) indexer_metrics: Option<Arc<IndexerMetrics>>,
    pub(crate) distributor_metrics: Option<Arc<DistributorMetrics>>,
    pub(crate) webhook_metrics: Option<Arc<WebhookMetrics>>,
    pub(crate) indexer: Option<IndexerConfig>,
    pub(crate) stream: String,
    pub(crate) chain: SharedChain,
    pub(crate) http: HttpMetrics,
    pub(crate) status_cache: tokio::sync::Mutex<Option<(Instant, axum::body::Bytes)>>,
    pub(crate) replay: Mutex<Option<ReplayView>>,
    pub(crate) replay_seq: std::sync::atomic::AtomicU64,
    /// Group-commit workers of `POST /send-ft`, started on first use (inside the runtime).
    pub(crate) batcher: std::sync::OnceLock<crate::batch::Batcher>,
    /// Cancelled when the server shuts down: stops background work (replays).
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
    indexer_metrics: Option<Arc<IndexerMetrics>>,
    distributor_metrics: Option<Arc<DistributorMetrics>>,
    webhook_metrics: Option<Arc<WebhookMetrics>>,
    indexer: Option<IndexerConfig>,
    rpc: Vec<payouts_near::RpcEndpointConfig>,
    distributor_registers: Option<bool>,
    treasury: Option<String>,
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

    /// The indexer running in this process: its counters go to `/metrics` and its head to `/status`.
    pub fn indexer_metrics(mut self, m: Arc<IndexerMetrics>) -> Self {
        self.indexer_metrics = Some(m);
        self
    }

    /// The distributor running in this process: its counters and histograms go to `/metrics`.
    pub fn distributor_metrics(mut self, m: Arc<DistributorMetrics>) -> Self {
        self.distributor_metrics = Some(m);
        self
    }

    /// The webhook delivery worker running in this process: its counters go to `/metrics`.
    pub fn webhook_metrics(mut self, m: Arc<WebhookMetrics>) -> Self {
        self.webhook_metrics = Some(m);
        self
    }

    /// The indexer settings: names the cursor `/status` reads and enables `POST /admin/replay`.
    pub fn indexer_config(mut self, cfg: IndexerConfig) -> Self {
        self.indexer = Some(cfg);
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
        let stream = self
            .indexer
            .as_ref()
            .map_or_else(|| IndexerConfig::default().stream, |c| c.stream.clone());
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
        );
        Ok(AppState {
            inner: Arc::new(Inner {
                read_pool: self.read_pool.unwrap_or_else(|| self.pool.clone()),
                pool: self.pool,
                guard: crate::guard::Guard::new(&self.config),
                metrics_cache: tokio::sync::Mutex::new(None),
                config: self.config,
                tokens,
                indexer_metrics: self.indexer_metrics,
                distributor_metrics: self.distributor_metrics,
                webhook_metrics: self.webhook_metrics,
                indexer: self.indexer,
                stream,
                chain: Arc::new(chain),
                http: HttpMetrics::default(),
                status_cache: tokio::sync::Mutex::new(None),
                replay: Mutex::new(None),
                replay_seq: std::sync::atomic::AtomicU64::new(0),
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
            indexer_metrics: None,
            distributor_metrics: None,
            webhook_metrics: None,
            indexer: None,
            rpc: Vec::new(),
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

    /// Stops background work started by requests (a running replay).
    pub fn shutdown_background(&self) {
        self.inner.background.cancel();
    }
}
