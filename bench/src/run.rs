//! The run: devnet, throwaway database, indexer, distributor (and the webhook worker with `--webhook`), the
//! feed, the per-second sampling until every claim settled, the printed summary and the report.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use payouts_devnet::Devnet;
use payouts_distributor::{Distributor, DistributorConfig, DistributorMetrics};
use payouts_indexer::{Indexer, IndexerConfig, IndexerMetrics};
use payouts_store::claims::payout_timing;
use payouts_store::testdb::TestDb;
use tokio_util::sync::CancellationToken;

use crate::args::{BenchArgs, WebhookMode};
use crate::feed::{feed, feed_campaign, start_webhooks};
use crate::ledger::{check_ledger, run_claims};
use crate::receivers::Landed;
use crate::report::{
    machine, webhook_name, write_report, ClaimsAndTransfers, Latency, Report, Settings, Throughput,
    TimeSplit, Totals, WebhookSummary,
};
use crate::sampling::{
    counts, fill_rates, progress_bar, window_rates, Counts, Sample, Sampler,
    MOVING_AVERAGE_SAMPLES, WINDOW_SECS,
};

/// Runs the benchmark, prints its report and writes it to `--report-dir`. Fails if any claim was paid twice.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!((1..=8).contains(&args.keys), "--keys: 1 to 8");
    anyhow::ensure!((1..=100).contains(&args.per_tx), "--per-tx: 1 to 100");
    if let Some(rate) = args.rate {
        anyhow::ensure!(
            rate > 0 && args.duration_secs > 0,
            "--rate and --duration-secs: at least 1"
        );
    }
    let planned = args
        .rate
        .map_or(args.claims, |r| r.saturating_mul(args.duration_secs));
    let (devnet, _keys_dir) = Devnet::start_for_tests(|c| {
        c.users = args.receivers.users_needed(planned);
        c.block_time_ms = args.block_time_ms;
        c.lift_gas_limit = args.lift_gas_limit;
        c.rpc_timeout_ms = 10_000;
    })
    .await
    .context("starting the devnet")?;
    let gas_limit = devnet.gas_limit();
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
        coalesce: args.coalesce,
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
    let per_tx = distributor.limits_for("token.devnet").transfers_per_tx();
    let distributor_task = tokio::spawn(distributor.run(stop.clone()));

    println!(
        "payouts bench: {} keys, {per_tx} transfers/tx at start, {} in flight/key, block {} ms, gas limit {}, receivers {}, coalesce {}",
        args.keys,
        args.max_in_flight,
        args.block_time_ms,
        gas_limit.map_or("lifted".to_string(), |g| format!("{} Tgas", g / 1_000_000_000_000)),
        args.receivers.name(),
        args.coalesce,
    );
    let since = chrono::Utc::now();
    let started = Instant::now();
    let first_height = devnet.head_height();
    let mut sampler = Sampler::new(started);
    let second = Duration::from_secs(1);
    let mut campaign_stored = None;
    let fed = match args.rate {
        None => {
            if args.campaign {
                campaign_stored =
                    Some(feed_campaign(&db, &devnet.rpc_url(), args.receivers, args.claims).await?);
            } else {
                feed(&pool, args.receivers, 0, args.claims).await?;
            }
            let bar = progress_bar(
                args.claims,
                "[{bar:24}] {pos}/{len} confirmed {elapsed:>4} {wide_msg}",
            );
            let mut tick = tokio::time::interval(second);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let s = sampler.take(&pool, args.claims).await?;
                let lag = imetrics.snapshot().lag_blocks();
                bar.set_message(format!(
                    "{} open, {} failed, {:.0}/s, lag {lag} blk",
                    s.open, s.failed, s.avg10_per_s
                ));
                bar.set_position(s.confirmed.max(0) as u64);
                if s.open == 0 {
                    break;
                }
            }
            bar.finish_and_clear();
            args.claims
        }
        Some(rate) => {
            let total = rate * args.duration_secs;
            let bar = progress_bar(
                args.duration_secs,
                "{prefix} [{bar:24}] {pos}/{len} s {wide_msg}",
            );
            bar.set_prefix("feeding");
            let mut fed = 0;
            let mut next_sample = started + second;
            let tick = Duration::from_millis(200);
            let message = |s: &Sample, lag: u64| {
                format!(
                    "fed {}, {} confirmed, {} open, {:.0}/s, lag {lag} blk",
                    s.fed, s.confirmed, s.open, s.avg10_per_s
                )
            };
            while fed < total {
                let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
                if due > fed {
                    feed(&pool, args.receivers, fed, due - fed).await?;
                    fed = due;
                }
                if Instant::now() >= next_sample {
                    while next_sample <= Instant::now() {
                        next_sample += second;
                    }
                    let s = sampler.take(&pool, fed).await?;
                    bar.set_message(message(&s, imetrics.snapshot().lag_blocks()));
                    bar.set_position(started.elapsed().as_secs().min(args.duration_secs));
                }
                tokio::time::sleep_until(next_sample.min(Instant::now() + tick).into()).await;
            }
            bar.set_position(args.duration_secs);
            bar.set_prefix("draining");
            let drain = Instant::now();
            loop {
                tokio::time::sleep_until(next_sample.into()).await;
                next_sample += second;
                let s = sampler.take(&pool, fed).await?;
                bar.set_message(message(&s, imetrics.snapshot().lag_blocks()));
                if s.open == 0 {
                    break;
                }
                if drain.elapsed() >= Duration::from_secs(120) {
                    bar.finish_and_clear();
                    anyhow::bail!("claims still open 2 min after the feed stopped");
                }
            }
            bar.finish_and_clear();
            fed
        }
    };
    let elapsed = started.elapsed();
    // Paying the campaign, from the moment its rows were stored (1-s sampling: ±1 s).
    let campaign_pay_s = campaign_stored.map(|t| t.elapsed().as_secs_f64().max(1e-9));
    let mut samples = sampler.samples;
    fill_rates(&mut samples, MOVING_AVERAGE_SAMPLES);
    let blocks = devnet.head_height().saturating_sub(first_height).max(1);
    let mut conn = payouts_store::get(&pool).await?;
    let t = payout_timing(&mut conn, since).await?;
    drop(conn);
    let Counts {
        confirmed,
        open,
        failed,
    } = counts(&pool).await?;
    let m = dmetrics.snapshot();
    let overall = t.confirmed as f64 / t.span_seconds.max(1e-9);
    println!(
        "confirmed:            {confirmed} ({open} open, {failed} failed) in {:.1} s",
        elapsed.as_secs_f64()
    );
    println!(
        "throughput:           {overall:.0} claims/s (first claim → last confirmation: {:.1} s)",
        t.span_seconds
    );
    println!(
        "latency pending→confirmed: p50 {:.2} s, p95 {:.2} s, p99 {:.2} s",
        t.p50_seconds, t.p95_seconds, t.p99_seconds
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
    let windows = match args.rate {
        Some(_) => window_rates(&samples, WINDOW_SECS, args.duration_secs as f64),
        None => Vec::new(),
    };
    let steady: Vec<f64> = windows.iter().skip(1).copied().collect();
    let (sustained_mean, sustained_min) = if steady.is_empty() {
        (None, None)
    } else {
        let min = steady.iter().copied().fold(f64::INFINITY, f64::min);
        let mean = steady.iter().sum::<f64>() / steady.len() as f64;
        println!("sustained (10 s windows after the first): mean {mean:.0}/s, lowest {min:.0}/s");
        (Some(mean), Some(min))
    };
    // Transfers on the ledger (fewer than claims when coalesced): the chain's cost is per transfer.
    let claims = run_claims(&pool).await?;
    let transfers = devnet.ft_transfers();
    let ledger = check_ledger(
        transfers.iter().map(|t| t.event.memo.as_deref()),
        &claims,
        |c| c.0,
    );
    let landed = Landed::new(t.confirmed, ledger.transfers, t.span_seconds);
    println!(
        "claims and transfers: {:.0} claims/s, {:.0} transfers/s, {:.2} claims per transfer ({}, coalesce {})",
        landed.claims_per_s,
        landed.transfers_per_s,
        landed.claims_per_transfer,
        args.receivers.name(),
        args.coalesce
    );
    let block_s = args.block_time_ms as f64 / 1000.0;
    let p95_blocks = t.p95_seconds / block_s;
    // When each claim landed: the block of the receipt that paid it (what a receiver sees; confirmed adds
    // finality and indexing).
    let block_ts: HashMap<u64, u64> = devnet
        .block_gas()
        .iter()
        .map(|b| (b.height, b.timestamp_nanos))
        .collect();
    let landing = crate::landing::landing_latency(
        transfers
            .iter()
            .map(|t| (t.event.memo.as_deref(), t.height)),
        &block_ts,
        &claims,
        |c| c.1,
    );
    match &landing {
        Some(l) => println!(
            "p95 in blocks:        {p95_blocks:.1} to confirmed (final + indexed), {:.1} to landed on chain (landed: p50 {:.2} s, p95 {:.2} s, p99 {:.2} s)",
            l.p95_s / block_s,
            l.p50_s,
            l.p95_s,
            l.p99_s
        ),
        None => println!("p95 in blocks:        {p95_blocks:.1} to confirmed (final + indexed)"),
    }
    let mut ceiling = None;
    let mut tgas_per_transfer = None;
    if let Some(limit) = gas_limit {
        // Compute per transfer as the devnet admits it (nearcore fills chunks by compute, and storage costs
        // about 3x more compute than gas): the block compute actually used per confirmed transfer.
        let gas = devnet.block_gas();
        let after: Vec<_> = gas.iter().filter(|b| b.height > first_height).collect();
        let compute: u64 = after.iter().map(|b| b.compute).sum();
        let used: u64 = after.iter().map(|b| b.used).sum();
        let per_transfer = compute as f64 / ledger.transfers.max(1) as f64;
        let c = limit as f64 / per_transfer / (args.block_time_ms as f64 / 1000.0);
        let prices: Vec<u128> = after.iter().map(|b| b.gas_price).collect();
        println!(
            "single-token ceiling: {c:.0} transfers/s ({:.2} Tcompute, {:.2} Tgas burnt per transfer); claims reached {:.0}%, transfers {:.0}%",
            per_transfer / 1e12,
            used as f64 / ledger.transfers.max(1) as f64 / 1e12,
            100.0 * overall / c,
            100.0 * landed.transfers_per_s / c
        );
        if let (Some(lo), Some(hi)) = (prices.iter().min(), prices.iter().max()) {
            println!("gas price:            {lo} .. {hi} yocto/gas over the run");
        }
        if let Some(pay) = campaign_pay_s {
            let rate = confirmed as f64 / pay;
            println!(
                "campaign paid:        {rate:.0} claims/s from the upload's end to the last confirmation ({pay:.1} s) = {:.0}% of the ceiling",
                100.0 * rate / c
            );
        }
        ceiling = Some(c);
        tgas_per_transfer = Some(per_transfer / 1e12);
    }
    let success_share =
        (confirmed + failed > 0).then(|| confirmed as f64 / (confirmed + failed) as f64);
    println!(
        "success share:        {}",
        success_share.map_or("-".to_string(), |s| format!("{:.2} %", 100.0 * s))
    );
    println!(
        "duplicates:           {} ({} claims paid more than once, {} transfers naming no claim; {} transfers, {} claims paid)",
        ledger.duplicates,
        ledger.claims_paid_more_than_once,
        ledger.transfers_naming_no_claim,
        ledger.transfers,
        ledger.claims_paid
    );
    if ledger.confirmed_not_paid > 0 || ledger.paid_not_confirmed > 0 {
        println!(
            "ledger mismatch:      {} confirmed but not on the ledger, {} paid but not confirmed",
            ledger.confirmed_not_paid, ledger.paid_not_confirmed
        );
    }
    let mut webhooks = None;
    if let Some((receiver, metrics, task)) = webhook {
        let mut conn = payouts_store::get(&pool).await?;
        let s = payouts_store::webhooks::endpoint_summaries(&mut conn).await?;
        let pending: i64 = s.iter().map(|e| e.pending).sum();
        use std::sync::atomic::Ordering::Relaxed;
        let summary = WebhookSummary {
            mode: webhook_name(args.webhook.unwrap_or(WebhookMode::Ok)).to_string(),
            received: receiver.received().len() as u64,
            delivered: metrics.delivered.load(Relaxed),
            failed_attempts: metrics.failed_attempts.load(Relaxed),
            pending,
        };
        println!(
            "webhooks ({} receiver): {} requests received, {} delivered, {} failed attempts, {pending} still pending",
            summary.mode, summary.received, summary.delivered, summary.failed_attempts,
        );
        webhooks = Some(summary);
        stop_token_for_webhooks.cancel();
        task.await??;
    }
    stop.cancel();
    distributor_task.await??;
    indexer_task.await??;
    devnet.shutdown().await;

    let report = Report {
        started_at: since,
        settings: Settings {
            campaign: args.campaign,
            mode: if args.rate.is_some() {
                "sustained"
            } else {
                "backlog"
            }
            .to_string(),
            claims: args.rate.is_none().then_some(args.claims),
            rate: args.rate,
            duration_secs: args.rate.map(|_| args.duration_secs),
            keys: args.keys,
            per_tx_requested: args.per_tx,
            per_tx,
            max_in_flight: args.max_in_flight,
            block_time_ms: args.block_time_ms,
            gas_limit_tgas: gas_limit.map(|g| g as f64 / 1e12),
            gas_limit_lifted: args.lift_gas_limit,
            webhook: args.webhook.map(|w| webhook_name(w).to_string()),
        },
        machine: machine(),
        totals: Totals {
            fed,
            confirmed,
            failed,
            open,
            elapsed_s: elapsed.as_secs_f64(),
            blocks,
            transfers_per_block: confirmed as f64 / blocks as f64,
            batches: m.batches,
            transfers: m.transfers,
            rebroadcasts: m.rebroadcasts,
            txs_dead: m.txs_dead,
            rpc_errors: m.rpc_errors,
        },
        throughput: Throughput {
            campaign_paid_per_s: campaign_pay_s.map(|pay| confirmed as f64 / pay),
            overall_per_s: overall,
            span_s: t.span_seconds,
            sustained_mean_per_s: sustained_mean,
            sustained_min_per_s: sustained_min,
            windows_10s_per_s: windows,
            single_token_ceiling_per_s: ceiling,
            tgas_per_transfer,
            ceiling_share: ceiling.map(|c| overall / c),
        },
        latency: Latency {
            p50_s: t.p50_seconds,
            p95_s: t.p95_seconds,
            p99_s: t.p99_seconds,
        },
        time_split: TimeSplit {
            queue_s: t.queue_seconds,
            broadcast_s: t.broadcast_seconds,
            settle_s: t.settle_seconds,
        },
        success_share,
        duplicates: ledger.duplicates,
        ledger,
        webhooks,
        claims_and_transfers: Some(ClaimsAndTransfers {
            receivers: args.receivers.name(),
            coalesce: args.coalesce,
            landed,
            p95_blocks,
            landing_p95_blocks: landing.as_ref().map(|l| l.p95_s / block_s),
            landing,
        }),
        series: samples,
    };
    let (json, svg) = write_report(&args.report_dir, &report)?;
    println!("report:               {}", json.display());
    println!("chart:                {}", svg.display());
    anyhow::ensure!(
        report.duplicates == 0,
        "{} duplicate payments on the ledger ({} claims paid more than once, {} transfers naming no claim)",
        report.duplicates,
        report.ledger.claims_paid_more_than_once,
        report.ledger.transfers_naming_no_claim
    );
    Ok(())
}
