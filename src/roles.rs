//! The long-running roles and one-shot commands, each built from the one `Config`.

use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use payouts_indexer::replay::replay;
use payouts_indexer::{Indexer, IndexerMetrics};
use payouts_store::migrate::{run_migrations, Direction};
use payouts_store::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

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

/// A token cancelled on SIGINT (Ctrl-C) or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}

/// `payouts indexer`
pub async fn indexer(config: Config) -> anyhow::Result<()> {
    let pool = prepare_database(&config).await?;
    let indexer = Indexer::new(
        pool,
        config.indexer.clone(),
        Arc::new(IndexerMetrics::default()),
    )?;
    indexer.run(shutdown_on_signals()).await?;
    Ok(())
}

/// `payouts replay`
pub async fn replay_range(config: Config, from: u64, to: u64, dry_run: bool) -> anyhow::Result<()> {
    let pool = prepare_database(&config).await?;
    let bar = ProgressBar::new(to.saturating_sub(from) + 1);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} blocks {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
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

/// `payouts devnet`
pub async fn devnet(config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signals();
    payouts_devnet::run(config.devnet, async move { shutdown.cancelled().await }).await?;
    Ok(())
}
