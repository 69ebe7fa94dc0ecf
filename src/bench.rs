//! `payouts bench`: the whole pipeline on this machine, measured end to end from pending claim to confirmed.
//!
//! A throwaway PostgreSQL (or `DATABASE_URL`), the devnet, the indexer (real lake stream) reconciling outcomes
//! and the distributor paying: exactly what `payouts dev` runs. Two shapes:
//! - a backlog (`--claims N`): N claims inserted at once, timed until all are confirmed;
//! - a sustained feed (`--rate R --duration-secs S`): claims arrive at R/s for S seconds; the report gives the
//!   confirmed rate per 10-second window, so "sustained" can be read off.
//!
//! The report names where the time went (queue, broadcast, settle) and, with the block gas limit in force, the
//! devnet's single-token ceiling (gas limit ÷ gas per transfer ÷ block time) with the share reached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use payouts_devnet::{Devnet, DevnetConfig};
use payouts_distributor::{Distributor, DistributorConfig, DistributorMetrics};
use payouts_indexer::{Indexer, IndexerConfig, IndexerMetrics};
use payouts_store::claims::{count_by_status, insert_claims, payout_timing, NewClaim};
use payouts_store::testdb::TestDb;
use payouts_store::{ClaimStatus, PgPool, Yocto};
use tokio_util::sync::CancellationToken;

/// What to run.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Lift the devnet's per-block gas limit (throughput of the software, not of the chain).
    #[arg(long)]
    pub lift_gas_limit: bool,
    /// Backlog mode: claims inserted at once.
    #[arg(long, default_value_t = 50_000)]
    pub claims: u64,
    /// Sustained mode: claims per second fed for `--duration-secs`.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Sustained mode: how long to feed.
    #[arg(long, default_value_t = 600)]
    pub duration_secs: u64,
    /// Treasury keys (nonce lanes) used, 1..=8.
    #[arg(long, default_value_t = 8)]
    pub keys: usize,
    /// Devnet block time.
    #[arg(long, default_value_t = 500)]
    pub block_time_ms: u64,
    /// Transactions in flight per key.
    #[arg(long, default_value_t = 32)]
    pub max_in_flight: usize,
    /// `ft_transfer` actions per transaction (batch size), at most 100. With the block gas limit in force,
    /// a block admits a receipt only when its prepaid gas still fits, so batches that tile the limit
    /// (e.g. 83 × 3 Tgas: four per 1,000 Tgas block) fill blocks better than full ones (three of 300 Tgas).
    #[arg(long, default_value_t = 100)]
    pub per_tx: usize,
    /// Also deliver webhooks of every event type to a local receiver that answers `ok` (200) or `hang`s
    /// (never answers): the distributor's throughput must not depend on it.
    #[arg(long, value_enum)]
    pub webhook: Option<WebhookMode>,
}

/// How the bench's webhook receiver behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WebhookMode {
    /// Answers 200 at once.
    Ok,
    /// Never answers (each request times out).
    Hang,
}

async fn counts(pool: &PgPool) -> anyhow::Result<(i64, i64)> {
    let mut conn = payouts_store::get(pool).await?;
    let c = count_by_status(&mut conn).await?;
    let get = |s: ClaimStatus| c.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n);
    Ok((
        get(ClaimStatus::Confirmed),
        get(ClaimStatus::Pending) + get(ClaimStatus::Submitted),
    ))
}

async fn feed(pool: &PgPool, from: u64, n: u64) -> anyhow::Result<()> {
    let rows: Vec<NewClaim> = (from..from + n)
        .map(|i| {
            let user = format!("user-{}.devnet", 2 * (i % 500));
            NewClaim::manual(
                &format!("bench-{i}"),
                "d",
                "token.devnet",
                &user,
                Yocto(1 + u128::from(i % 1000)),
                None,
            )
        })
        .collect();
    let mut conn = payouts_store::get(pool).await?;
    for chunk in rows.chunks(5_000) {
        insert_claims(&mut conn, chunk).await?;
    }
    Ok(())
}

/// Runs the benchmark and prints its report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!((1..=8).contains(&args.keys), "--keys: 1 to 8");
    anyhow::ensure!((1..=100).contains(&args.per_tx), "--per-tx: 1 to 100");
    let keys_dir = tempfile::tempdir()?;
    let mut dcfg = DevnetConfig::for_tests();
    dcfg.key_dir = Some(keys_dir.path().to_path_buf());
    dcfg.block_time_ms = args.block_time_ms;
    dcfg.lift_gas_limit = args.lift_gas_limit;
    dcfg.rpc_timeout_ms = 10_000;
    let gas_limit = dcfg.effective_gas_limit();
    let devnet = Devnet::start(dcfg).await.context("starting the devnet")?;
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let stop_token_for_webhooks = CancellationToken::new();

    // Webhooks first: the endpoint must be registered before the first claim changes.
    let mut webhook = None;
    if let Some(mode) = args.webhook {
        webhook = Some(start_webhooks(&pool, mode, stop_token_for_webhooks.clone()).await?);
    }

    let icfg = IndexerConfig {
        start_block_height: Some(1),
        ..IndexerConfig::fastnear(devnet.rpc_url())
    };
    let imetrics = Arc::new(IndexerMetrics::default());
    let indexer = Indexer::new(pool.clone(), icfg, imetrics.clone())?;
    let stop = CancellationToken::new();
    let indexer_task = tokio::spawn(indexer.run(stop.clone()));

    let cfg = DistributorConfig {
        key_files: devnet.treasury_key_files()[..args.keys].to_vec(),
        max_in_flight_per_key: args.max_in_flight,
        max_transfers_per_tx: args.per_tx,
        poll_interval_ms: 20,
        max_batch_wait_ms: 200,
        ..DistributorConfig::default()
    };
    let dmetrics = Arc::new(DistributorMetrics::default());
    let distributor = Distributor::new(
        pool.clone(),
        cfg.clone(),
        &devnet.rpc_url(),
        dmetrics.clone(),
    )
    .await?;
    let per_tx = distributor.limits().transfers_per_tx();
    let distributor_task = tokio::spawn(distributor.run(stop.clone()));

    println!(
        "payouts bench: {} keys, {per_tx} transfers/tx, {} in flight/key, block {} ms, gas limit {}",
        args.keys,
        args.max_in_flight,
        args.block_time_ms,
        gas_limit.map_or("lifted".to_string(), |g| format!("{} Tgas", g / 1_000_000_000_000)),
    );
    let since = chrono::Utc::now();
    let started = Instant::now();
    let first_height = devnet.head_height();
    let mut windows = Vec::new();
    match args.rate {
        None => {
            feed(&pool, 0, args.claims).await?;
            let mut last = (Instant::now(), 0);
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let (confirmed, open) = counts(&pool).await?;
                if last.0.elapsed() >= Duration::from_secs(2) || open == 0 {
                    let rate = (confirmed - last.1) as f64 / last.0.elapsed().as_secs_f64();
                    let lag = imetrics.snapshot().lag_blocks();
                    println!("  {:>6.0} s: {confirmed} confirmed, {open} open, {rate:.0}/s, indexer lag {lag} blocks", started.elapsed().as_secs_f64());
                    last = (Instant::now(), confirmed);
                }
                if open == 0 {
                    break;
                }
            }
        }
        Some(rate) => {
            let total = rate * args.duration_secs;
            let mut fed = 0;
            let mut last = (Instant::now(), 0i64);
            let tick = Duration::from_millis(200);
            while fed < total {
                let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
                if due > fed {
                    feed(&pool, fed, due - fed).await?;
                    fed = due;
                }
                if last.0.elapsed() >= Duration::from_secs(10) {
                    let (confirmed, open) = counts(&pool).await?;
                    let r = (confirmed - last.1) as f64 / last.0.elapsed().as_secs_f64();
                    let lag = imetrics.snapshot().lag_blocks();
                    println!("  {:>6.0} s: fed {fed}, {confirmed} confirmed, {open} open, {r:.0}/s, indexer lag {lag} blocks", started.elapsed().as_secs_f64());
                    windows.push(r);
                    last = (Instant::now(), confirmed);
                }
                tokio::time::sleep(tick).await;
            }
            let drain = Instant::now();
            while counts(&pool).await?.1 > 0 {
                anyhow::ensure!(
                    drain.elapsed() < Duration::from_secs(120),
                    "claims still open 2 min after the feed stopped"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let elapsed = started.elapsed();
    let blocks = devnet.head_height().saturating_sub(first_height).max(1);
    let mut conn = payouts_store::get(&pool).await?;
    let t = payout_timing(&mut conn, since).await?;
    drop(conn);
    let (confirmed, open) = counts(&pool).await?;
    let m = dmetrics.snapshot();
    println!(
        "confirmed:            {confirmed} ({open} open) in {:.1} s",
        elapsed.as_secs_f64()
    );
    println!(
        "throughput:           {:.0} transfers/s (first claim → last confirmation: {:.1} s)",
        t.confirmed as f64 / t.span_seconds.max(1e-9),
        t.span_seconds
    );
    println!(
        "latency pending→confirmed: p50 {:.2} s, p95 {:.2} s",
        t.p50_seconds, t.p95_seconds
    );
    println!("where the time goes (means): waiting for a batch {:.2} s, stored→accepted {:.2} s, stored→confirmed {:.2} s",
        t.queue_seconds, t.broadcast_seconds, t.settle_seconds);
    println!(
        "distributor:          {} batches, {} transfers, {} rebroadcasts, {} dead, {} rpc errors",
        m.batches, m.transfers, m.rebroadcasts, m.txs_dead, m.rpc_errors
    );
    println!(
        "chain:                {blocks} blocks, {:.1} transfers/block",
        confirmed as f64 / blocks as f64
    );
    if !windows.is_empty() {
        let steady: Vec<f64> = windows.iter().skip(1).copied().collect();
        let min = steady.iter().copied().fold(f64::INFINITY, f64::min);
        let mean = steady.iter().sum::<f64>() / steady.len().max(1) as f64;
        println!("sustained (10 s windows after the first): mean {mean:.0}/s, lowest {min:.0}/s");
    }
    if let Some(limit) = gas_limit {
        // Gas per transfer as the devnet admits it: the block gas actually used per confirmed transfer.
        let gas = devnet.block_gas();
        let used: u64 = gas
            .iter()
            .filter(|b| b.height > first_height)
            .map(|b| b.used)
            .sum();
        let per_transfer = used as f64 / confirmed.max(1) as f64;
        let ceiling = limit as f64 / per_transfer / (args.block_time_ms as f64 / 1000.0);
        let achieved = t.confirmed as f64 / t.span_seconds.max(1e-9);
        println!(
            "single-token ceiling: {ceiling:.0} transfers/s ({:.2} Tgas burnt per transfer); reached {:.0}%",
            per_transfer / 1e12,
            100.0 * achieved / ceiling
        );
    }
    if let Some((receiver, metrics, task)) = webhook {
        let mut conn = payouts_store::get(&pool).await?;
        let s = payouts_store::webhooks::endpoint_summaries(&mut conn).await?;
        let pending: i64 = s.iter().map(|e| e.pending).sum();
        use std::sync::atomic::Ordering::Relaxed;
        println!(
            "webhooks ({:?} receiver): {} requests received, {} delivered, {} failed attempts, {pending} still pending",
            args.webhook.unwrap_or(WebhookMode::Ok),
            receiver.received().len(),
            metrics.delivered.load(Relaxed),
            metrics.failed_attempts.load(Relaxed),
        );
        stop_token_for_webhooks.cancel();
        task.await??;
    }
    stop.cancel();
    distributor_task.await??;
    indexer_task.await??;
    devnet.shutdown().await;
    Ok(())
}

type WebhookRun = (
    payouts_webhooks::receiver::Receiver,
    Arc<payouts_webhooks::WebhookMetrics>,
    tokio::task::JoinHandle<Result<(), payouts_webhooks::WebhookError>>,
);

/// A local receiver and the webhook worker delivering every event type to it.
async fn start_webhooks(
    pool: &PgPool,
    mode: WebhookMode,
    stop: CancellationToken,
) -> anyhow::Result<WebhookRun> {
    use payouts_webhooks::receiver::{Mode, Receiver};
    use payouts_webhooks::{EndpointConfig, EventType, WebhookMetrics, Webhooks, WebhooksConfig};
    const ENV: &str = "PAYOUTS_BENCH_WEBHOOK_SECRET";
    let secret = format!("bench-{:032x}", rand::random::<u128>());
    std::env::set_var(ENV, &secret);
    let rx_mode = match mode {
        WebhookMode::Ok => Mode::Accept,
        WebhookMode::Hang => Mode::Hang,
    };
    let receiver = Receiver::start(([127, 0, 0, 1], 0).into(), secret.as_bytes(), rx_mode).await?;
    let cfg = WebhooksConfig {
        endpoints: vec![EndpointConfig {
            name: "bench".into(),
            url: receiver.url(),
            secret_env: ENV.into(),
            events: EventType::ALL.to_vec(),
            max_in_flight: 1,
        }],
        ..WebhooksConfig::default()
    };
    let metrics = Arc::new(WebhookMetrics::default());
    let worker = Webhooks::new(pool.clone(), cfg, metrics.clone())?;
    let task = tokio::spawn(worker.run(stop));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut conn = payouts_store::get(pool).await?;
        if !payouts_store::webhooks::endpoint_summaries(&mut conn)
            .await?
            .is_empty()
        {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "webhook endpoint not registered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok((receiver, metrics, task))
}
