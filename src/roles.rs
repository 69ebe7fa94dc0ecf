//! The long-running roles and one-shot commands, each built from the one `Config`.

use std::sync::Arc;

use anyhow::Context;
use payouts_indexer::replay::replay;
use payouts_indexer::{Indexer, IndexerMetrics};
use payouts_store::migrate::{run_migrations, Direction};
use payouts_store::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};

/// Applies pending migrations and opens the pool: the start of every long-running role.
pub async fn prepare_database(config: &Config) -> anyhow::Result<PgPool> {
    let db = config.database()?;
    let applied = run_migrations(db, Direction::Up)
        .await
        .with_context(|| format!("migrating {}", db.url))?;
    if !applied.is_empty() {
        tracing::info!(migrations = ?applied, "applied migrations");
    }
    Ok(payouts_store::connect(db).await?)
}

/// The API's own read pool: `api.read_connections` connections to the same database, whose statements may
/// take no longer than a request may.
pub async fn read_pool(config: &Config) -> anyhow::Result<PgPool> {
    let db = config.database()?;
    let cfg = payouts_store::DbConfig {
        max_connections: config.api.read_connections,
        statement_timeout_ms: db.statement_timeout_ms.min(config.api.request_timeout_ms),
        ..db.clone()
    };
    Ok(payouts_store::connect(&cfg).await?)
}

/// A token cancelled on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed before this returns, so a
/// role calls it first: a signal that arrives while migrations run or keys load still ends the process
/// gracefully (exit 0) once start-up is done, instead of the default action killing it.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    #[cfg(unix)]
    let term = {
        use tokio::signal::unix::{signal, SignalKind};
        // Registering here, not in the task: the task may first run after the signal has come.
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let (mut term, mut int) = term;
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(i) => {
                        i.recv().await;
                    }
                    None => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            };
            tokio::select! {
                _ = term => {}
                _ = int => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}

/// `payouts indexer`
pub async fn indexer(config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signals();
    let pool = prepare_database(&config).await?;
    let indexer = Indexer::new(
        pool,
        config.indexer.clone(),
        Arc::new(IndexerMetrics::default()),
    )?;
    indexer.run(shutdown).await?;
    Ok(())
}

/// `payouts replay`
pub async fn replay_range(config: Config, from: u64, to: u64, dry_run: bool) -> anyhow::Result<()> {
    let pool = prepare_database(&config).await?;
    let mut bar = crate::progress::Progress::new(to.saturating_sub(from) + 1);
    let report = replay(&pool, &config.indexer, from, to, dry_run, |h| {
        bar.set_position(h - from + 1)
    })
    .await?;
    bar.finish_and_clear();
    let verb = if dry_run { "would insert" } else { "inserted" };
    println!(
        "replayed blocks {from}..={to}: {} blocks in {:.1} s ({:.0} blocks/s), {} matching events, {verb} {} new claims, {} malformed logs",
        report.blocks,
        report.elapsed.as_secs_f64(),
        report.blocks_per_second(),
        report.events,
        report.new_claims,
        report.malformed,
    );
    Ok(())
}

/// `payouts distributor`
pub async fn distributor(config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signals();
    let pool = prepare_database(&config).await?;
    let metrics = Arc::new(payouts_distributor::DistributorMetrics::default());
    let distributor = payouts_distributor::Distributor::with_endpoints(
        pool,
        config.distributor.clone(),
        &config.network.endpoints(),
        metrics,
    )
    .await?;
    distributor.run(shutdown).await?;
    Ok(())
}

/// `payouts api`: migrations, the pool, then the HTTP API and dashboard until SIGINT/SIGTERM. The chain head
/// comes from the `[network]` endpoints; `POST /admin/replay` uses `[indexer]`.
pub async fn api(config: Config) -> anyhow::Result<()> {
    let config_error = api_config_error;
    // Token secrets are part of the configuration: a missing one stops start-up before the database is touched.
    payouts_api::auth::Tokens::load(&config.api).map_err(config_error)?;
    let shutdown = shutdown_on_signals();
    let pool = prepare_database(&config).await?;
    let state = with_campaign_context(
        payouts_api::AppState::builder(pool, config.api.clone()),
        &config,
    )?
    .read_pool(read_pool(&config).await?)
    .rpc_endpoints(config.network.endpoints())
    .indexer_stream(config.indexer.stream.clone())
    .rule_tokens(config.indexer.rules.iter().map(|r| r.token.clone()))
    .build()
    .map_err(config_error)?;
    let listener = payouts_api::bind(config.api.listen).await?;
    payouts_api::serve(listener, state, shutdown).await?;
    Ok(())
}

/// `payouts webhooks`: delivers the outbox to the configured endpoints until SIGINT/SIGTERM.
pub async fn webhooks(config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signals();
    let webhooks = webhooks_worker(&config, None).await?;
    webhooks.run(shutdown).await?;
    Ok(())
}

/// The webhook worker of `config`: secrets are read (a missing one is a configuration error) before the
/// database is touched; `pool` is opened (with migrations) when not given.
async fn webhooks_worker(
    config: &Config,
    pool: Option<PgPool>,
) -> anyhow::Result<payouts_webhooks::Webhooks> {
    for e in &config.webhooks.endpoints {
        e.secret().map_err(ConfigError)?;
    }
    let pool = match pool {
        Some(p) => p,
        None => prepare_database(config).await?,
    };
    Ok(payouts_webhooks::Webhooks::new(
        pool,
        config.webhooks.clone(),
        Arc::new(payouts_webhooks::WebhookMetrics::default()),
    )?)
}

/// `payouts run`: the indexer, the distributor, the API and (with endpoints configured) webhook delivery in
/// one process on one pool, until SIGINT/SIGTERM. If one part fails, the others are stopped and the error
/// is reported; each part is also its own role (`indexer`, `distributor`, `api`, `webhooks`) for separate
/// deployment.
pub async fn run(config: Config) -> anyhow::Result<()> {
    check_secrets(&config)?;
    let shutdown = shutdown_on_signals();
    let pool = prepare_database(&config).await?;
    run_all(&config, pool, shutdown, |_| {}).await
}

/// What the API needs to know of the rest of the configuration for campaigns and the dashboard: the chain
/// id (explorer links), whether the distributor registers receivers (dry-run registration checks,
/// retryable failures) and the treasury account (balance check), read from the distributor's key files
/// without their private keys (unreadable there: a warning, and no balance check).
fn with_campaign_context(
    builder: payouts_api::AppStateBuilder,
    config: &Config,
) -> anyhow::Result<payouts_api::AppStateBuilder> {
    let d = &config.distributor;
    let mut builder = builder
        .chain_id(config.network.chain_id.clone())
        .distributor_registers(d.register_receivers);
    match payouts_distributor::treasury_account(&d.key_files, d.keys_env.as_deref()) {
        Ok(Some(account)) => builder = builder.treasury(account.to_string()),
        Ok(None) => {}
        // An API host without the distributor's key files still serves; campaign dry runs then skip the
        // treasury balance check (and say so: `covered` is null).
        Err(e) => {
            tracing::warn!(error = %e, "treasury account unknown: campaign dry runs will not check its balance")
        }
    }
    Ok(builder)
}

fn api_config_error(e: payouts_api::Error) -> anyhow::Error {
    match e {
        payouts_api::Error::Config(msg) => anyhow::Error::new(ConfigError(msg)),
        other => anyhow::Error::new(other),
    }
}

/// API tokens and webhook secrets are configuration: a missing one stops start-up before the database is
/// touched.
fn check_secrets(config: &Config) -> anyhow::Result<()> {
    payouts_api::auth::Tokens::load(&config.api).map_err(api_config_error)?;
    for e in &config.webhooks.endpoints {
        e.secret().map_err(ConfigError)?;
    }
    Ok(())
}

/// The in-process indexer's position, as `/status` shows it (the API does not know the indexer crate).
struct IndexerProbe(Arc<IndexerMetrics>);

impl payouts_api::IndexerProbe for IndexerProbe {
    fn position(&self) -> payouts_api::IndexerPosition {
        let s = self.0.snapshot();
        payouts_api::IndexerPosition {
            last_height: s.last_height,
            head_seen: s.head_seen,
            last_block_timestamp_nanos: s.last_block_timestamp_nanos,
            source_errors: s.source_errors,
        }
    }
}

/// The parts of `payouts run` on `pool` until `shutdown`; `ready` is called with the API's address once it
/// listens (`[api] listen` may give port 0).
pub async fn run_all(
    config: &Config,
    pool: PgPool,
    shutdown: CancellationToken,
    ready: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    let stop = shutdown.child_token();
    let indexer_metrics = Arc::new(IndexerMetrics::default());
    let distributor_metrics = Arc::new(payouts_distributor::DistributorMetrics::default());
    let webhook_metrics = Arc::new(payouts_webhooks::WebhookMetrics::default());
    // The process's metrics registry: each part's collector, exposed by the API on /metrics.
    let mut registry = payouts_near::prom::Registry::default();
    registry.register_collector(Box::new(indexer_metrics.clone()));
    registry.register_collector(Box::new(distributor_metrics.clone()));
    registry.register_collector(Box::new(webhook_metrics.clone()));

    // The webhook worker registers its endpoints before anything else changes a claim.
    let webhooks = payouts_webhooks::Webhooks::new(
        pool.clone(),
        config.webhooks.clone(),
        webhook_metrics.clone(),
    )?;
    let indexer = Indexer::new(
        pool.clone(),
        config.indexer.clone(),
        indexer_metrics.clone(),
    )?;
    let distributor = payouts_distributor::Distributor::with_endpoints(
        pool.clone(),
        config.distributor.clone(),
        &config.network.endpoints(),
        distributor_metrics.clone(),
    )
    .await?;
    let state = with_campaign_context(
        payouts_api::AppState::builder(pool.clone(), config.api.clone()),
        config,
    )?
    .read_pool(read_pool(config).await?)
    .rpc_endpoints(config.network.endpoints())
    .indexer_stream(config.indexer.stream.clone())
    .rule_tokens(config.indexer.rules.iter().map(|r| r.token.clone()))
    .metrics_registry(Arc::new(registry))
    .indexer_probe(Arc::new(IndexerProbe(indexer_metrics)))
    .build()
    .map_err(api_config_error)?;
    let listener = payouts_api::bind(config.api.listen).await?;
    let api = listener.local_addr()?;
    tracing::info!(%api, rpc = %config.network.shown(), "payouts run: starting");
    ready(api);

    // Shutdown order: the API and the distributor first; the indexer (which settles the transactions the
    // distributor drains) and webhook delivery once the distributor is done.
    let late = CancellationToken::new();
    let mut parts: tokio::task::JoinSet<(&'static str, anyhow::Result<()>)> =
        tokio::task::JoinSet::new();
    let token = late.clone();
    parts.spawn(async move { ("webhooks", webhooks.run(token).await.map_err(Into::into)) });
    let token = late.clone();
    parts.spawn(async move { ("indexer", indexer.run(token).await.map_err(Into::into)) });
    let token = stop.clone();
    let after = late.clone();
    parts.spawn(async move {
        let result = distributor.run(token).await.map_err(Into::into);
        after.cancel();
        ("distributor", result)
    });
    let token = stop.clone();
    parts.spawn(async move {
        let served = payouts_api::serve(listener, state, token).await;
        ("api", served.map_err(Into::into))
    });
    let mut first_error: Option<anyhow::Error> = None;
    while let Some(joined) = parts.join_next().await {
        let (part, result) = match joined {
            Ok(r) => r,
            Err(e) => ("task", Err(anyhow::anyhow!("a part panicked: {e}"))),
        };
        match result {
            Ok(()) if stop.is_cancelled() || part == "webhooks" => {}
            Ok(()) => {
                tracing::warn!(part, "stopped on its own; stopping the others");
                stop.cancel();
                late.cancel();
            }
            Err(e) => {
                tracing::error!(part, error = %format!("{e:#}"), "failed; stopping the others");
                stop.cancel();
                late.cancel();
                first_error.get_or_insert(e.context(format!("{part} failed")));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `payouts devnet`
pub async fn devnet(config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signals();
    payouts_devnet::run(config.devnet, async move { shutdown.cancelled().await }).await?;
    Ok(())
}
