//! `payouts bench`: the whole pipeline on this machine, measured end to end from pending claim to confirmed.
//!
//! A throwaway PostgreSQL (or `DATABASE_URL`), the devnet, the indexer (real lake stream) reconciling outcomes
//! and the distributor paying: exactly what `payouts dev` runs. Two shapes:
//! - a backlog (`--claims N`): N claims inserted at once, timed until all are confirmed;
//! - a sustained feed (`--rate R --duration-secs S`): claims arrive at R/s for S seconds; the report gives the
//!   confirmed rate per 10-second window, so "sustained" can be read off.
//!
//! The report names where the time went (queue, broadcast, settle) and, with the block gas limit in force, the
//! devnet's single-token ceiling (chunk compute limit ÷ compute per transfer ÷ block time: nearcore fills chunks by
//! compute, and storage costs about 3× more compute than gas) with the share reached, and the gas price range.
//!
//! A progress bar (on stderr, only when stdout is a terminal) follows the run; every second a sample (fed,
//! confirmed, open, failed) is taken. At the end the text summary is printed and `--report-dir` gets
//! `report.json` (settings, machine, totals, throughput, p50/p95/p99 latency, success share, duplicates on the
//! devnet ledger, the per-second series) and `throughput.svg` (transfers/s per second and the 10-s moving
//! average over time). Any claim paid twice fails the command.
//!
//! Receivers (`--receivers`): a pool of N registered users drawn in turn (default 500: repeat-heavy, so
//! coalescing merges claims) or `distinct` (every claim its own receiver, an airdrop). Claims and transfers
//! are reported apart (claims/s is what users feel, transfers/s the chain's cost: [`receivers::Landed`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use payouts_devnet::Devnet;
use payouts_distributor::{Distributor, DistributorConfig, DistributorMetrics};
use payouts_indexer::{Indexer, IndexerConfig, IndexerMetrics};
use payouts_store::api_queries::{list_claims, ClaimFilter};
use payouts_store::claims::{count_by_status, insert_claims, payout_timing, NewClaim};
use payouts_store::memo::claim_ids_from_memo;
use payouts_store::testdb::TestDb;
use payouts_store::{ClaimStatus, PgPool, Yocto};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

mod receivers;
pub use receivers::{Landed, Receivers};

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
    /// Devnet block time (default: mainnet's 600 ms).
    #[arg(long, default_value_t = 600)]
    pub block_time_ms: u64,
    /// Transactions in flight per key.
    #[arg(long, default_value_t = 32)]
    pub max_in_flight: usize,
    /// `ft_transfer` actions per transaction (batch size), at most 100. With the chunk limit in force, a
    /// receipt starts while the chunk's compute is below the limit (nearcore's rule; the last one may
    /// overshoot), so full batches fill chunks as well as smaller ones.
    #[arg(long, default_value_t = 100)]
    pub per_tx: usize,
    /// Also deliver webhooks of every event type to a local receiver that answers `ok` (200) or `hang`s
    /// (never answers): the distributor's throughput must not depend on it.
    #[arg(long, value_enum)]
    pub webhook: Option<WebhookMode>,
    /// Who the claims pay: a pool of N registered users drawn in turn (repeat-heavy) or `distinct` (each
    /// claim its own receiver).
    #[arg(long, default_value = "500")]
    pub receivers: Receivers,
    /// `distributor.coalesce`: merge claims of one receiver pending together into one transfer.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub coalesce: bool,
    /// Where `report.json` and `throughput.svg` go (created if missing).
    #[arg(long, default_value = "bench-report")]
    pub report_dir: PathBuf,
}

/// How the bench's webhook receiver behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WebhookMode {
    /// Answers 200 at once.
    Ok,
    /// Never answers (each request times out).
    Hang,
}

/// What coalescing did: claims and transfers landed apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimsAndTransfers {
    /// `--receivers`.
    pub receivers: String,
    /// `--coalesce`.
    pub coalesce: bool,
    /// Rates.
    pub landed: Landed,
    /// p95 latency in blocks.
    pub p95_blocks: f64,
}

/// Claim counts at one moment (the database is the run's own: every claim in it is the run's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    confirmed: i64,
    /// pending + submitted
    open: i64,
    failed: i64,
}

async fn counts(pool: &PgPool) -> anyhow::Result<Counts> {
    let mut conn = payouts_store::get(pool).await?;
    let c = count_by_status(&mut conn).await?;
    let get = |s: ClaimStatus| c.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n);
    Ok(Counts {
        confirmed: get(ClaimStatus::Confirmed),
        open: get(ClaimStatus::Pending) + get(ClaimStatus::Submitted),
        failed: get(ClaimStatus::Failed),
    })
}

async fn feed(pool: &PgPool, receivers: Receivers, from: u64, n: u64) -> anyhow::Result<()> {
    let rows: Vec<NewClaim> = (from..from + n)
        .map(|i| {
            let user = receivers.of(i);
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

/// Samples in the trailing moving average (one a second: 10 s).
const MOVING_AVERAGE_SAMPLES: usize = 10;
/// Length of the windows "sustained" is read from.
const WINDOW_SECS: f64 = 10.0;

/// One per-second sample of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t_s: f64,
    /// Claims fed so far.
    pub fed: u64,
    /// Claims confirmed so far.
    pub confirmed: i64,
    /// Claims pending or submitted.
    pub open: i64,
    /// Claims failed for good.
    pub failed: i64,
    /// Confirmations per second since the previous sample.
    pub per_s: f64,
    /// Confirmations per second over the trailing 10 samples (10 s).
    pub avg10_per_s: f64,
}

/// Confirmations per second between two samples (0 when no time passed).
fn rate_between(a: &Sample, b: &Sample) -> f64 {
    let dt = b.t_s - a.t_s;
    if dt > 0.0 {
        (b.confirmed - a.confirmed) as f64 / dt
    } else {
        0.0
    }
}

/// Fills `per_s` and `avg10_per_s` of sample `i` from the samples before it.
fn fill_rates_at(samples: &mut [Sample], i: usize, window: usize) {
    let (per_s, avg) = match i {
        0 => (0.0, 0.0),
        _ => (
            rate_between(&samples[i - 1], &samples[i]),
            rate_between(&samples[i.saturating_sub(window)], &samples[i]),
        ),
    };
    samples[i].per_s = per_s;
    samples[i].avg10_per_s = avg;
}

/// Fills `per_s` and the moving average (over `window` samples) of every sample.
fn fill_rates(samples: &mut [Sample], window: usize) {
    for i in 0..samples.len() {
        fill_rates_at(samples, i, window);
    }
}

/// Confirmations per second in consecutive, non-overlapping windows of `window_s` seconds that end by
/// `until_s`; a last partial window is left out.
fn window_rates(samples: &[Sample], window_s: f64, until_s: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let Some(mut start) = samples.first() else {
        return out;
    };
    for s in samples {
        if s.t_s > until_s + 0.5 {
            break;
        }
        // Samples come about a second apart; a window closes at the first sample `window_s` (±½ s) later.
        if s.t_s - start.t_s >= window_s - 0.5 {
            out.push(rate_between(start, s));
            start = s;
        }
    }
    out
}

/// The per-second samples of a run.
struct Sampler {
    started: Instant,
    samples: Vec<Sample>,
}

impl Sampler {
    fn new(started: Instant) -> Self {
        Sampler {
            started,
            samples: vec![Sample::default()],
        }
    }

    async fn take(&mut self, pool: &PgPool, fed: u64) -> anyhow::Result<Sample> {
        let c = counts(pool).await?;
        self.samples.push(Sample {
            t_s: self.started.elapsed().as_secs_f64(),
            fed,
            confirmed: c.confirmed,
            open: c.open,
            failed: c.failed,
            ..Sample::default()
        });
        let i = self.samples.len() - 1;
        fill_rates_at(&mut self.samples, i, MOVING_AVERAGE_SAMPLES);
        Ok(self.samples[i])
    }
}

/// The progress bar: drawn on stderr, and only when stdout is a terminal (piped output stays the report).
fn progress_bar(len: u64, template: &str) -> ProgressBar {
    use std::io::IsTerminal;
    let target = if std::io::stdout().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// What the devnet's ledger says about paying exactly once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerCheck {
    /// `ft_transfer`s applied on the devnet.
    pub transfers: u64,
    /// Distinct claims of the run paid.
    pub claims_paid: u64,
    /// Claims paid more than once.
    pub claims_paid_more_than_once: u64,
    /// Transfers whose memo names no claim of the run.
    pub transfers_naming_no_claim: u64,
    /// Claims stored as confirmed with no transfer on the ledger.
    pub confirmed_not_paid: u64,
    /// Claims paid on the ledger but not stored as confirmed.
    pub paid_not_confirmed: u64,
    /// `claims_paid_more_than_once + transfers_naming_no_claim`: must be 0.
    pub duplicates: u64,
}

/// Checks the ledger's transfer memos against the run's claims (`id → confirmed?`).
fn check_ledger<'a>(
    memos: impl IntoIterator<Item = Option<&'a str>>,
    claims: &HashMap<i64, bool>,
) -> LedgerCheck {
    let mut check = LedgerCheck::default();
    let mut per_claim: HashMap<i64, u64> = HashMap::new();
    for memo in memos {
        check.transfers += 1;
        // A merged transfer names several claims: each of them counts as paid by it.
        match memo.and_then(claim_ids_from_memo) {
            Some(ids) if ids.iter().all(|id| claims.contains_key(&id.0)) => {
                for id in ids {
                    *per_claim.entry(id.0).or_default() += 1;
                }
            }
            _ => check.transfers_naming_no_claim += 1,
        }
    }
    check.claims_paid = per_claim.len() as u64;
    check.claims_paid_more_than_once = per_claim.values().filter(|n| **n > 1).count() as u64;
    check.confirmed_not_paid = claims
        .iter()
        .filter(|(id, confirmed)| **confirmed && !per_claim.contains_key(id))
        .count() as u64;
    check.paid_not_confirmed = per_claim.keys().filter(|id| !claims[*id]).count() as u64;
    check.duplicates = check.claims_paid_more_than_once + check.transfers_naming_no_claim;
    check
}

/// Every claim in the (throwaway) database: id → confirmed?
async fn run_claims(pool: &PgPool) -> anyhow::Result<HashMap<i64, bool>> {
    let mut conn = payouts_store::get(pool).await?;
    let mut out = HashMap::new();
    let mut filter = ClaimFilter {
        limit: 10_000,
        ..ClaimFilter::default()
    };
    loop {
        let page = list_claims(&mut conn, &filter).await?;
        let Some(last) = page.last() else {
            return Ok(out);
        };
        filter.before = Some(last.id);
        out.extend(
            page.iter()
                .map(|c| (c.id.0, c.status == ClaimStatus::Confirmed)),
        );
    }
}

/// `DIR/report.json`: everything `payouts bench` measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// When the run started (UTC).
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// What ran.
    pub settings: Settings,
    /// Where it ran.
    pub machine: Machine,
    /// Counts at the end.
    pub totals: Totals,
    /// Confirmations per second.
    pub throughput: Throughput,
    /// Seconds from pending to confirmed.
    pub latency: Latency,
    /// Means of where a confirmed claim's time went, in seconds.
    pub time_split: TimeSplit,
    /// `confirmed / (confirmed + failed)` over the run's claims (`null` when none finished).
    pub success_share: Option<f64>,
    /// Claims paid more than once plus transfers naming no claim of the run: must be 0.
    pub duplicates: u64,
    /// The ledger check `duplicates` comes from.
    pub ledger: LedgerCheck,
    /// The webhook receiver, with `--webhook`.
    pub webhooks: Option<WebhookSummary>,
    /// Claims and transfers apart, and who was paid.
    #[serde(default)]
    pub claims_and_transfers: Option<ClaimsAndTransfers>,
    /// One sample a second.
    pub series: Vec<Sample>,
}

/// The run's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// `backlog` (`--claims`) or `sustained` (`--rate`, `--duration-secs`).
    pub mode: String,
    /// Backlog: claims inserted at once.
    pub claims: Option<u64>,
    /// Sustained: claims fed per second.
    pub rate: Option<u64>,
    /// Sustained: seconds fed.
    pub duration_secs: Option<u64>,
    /// Treasury keys (nonce lanes).
    pub keys: usize,
    /// `ft_transfer`s per transaction asked for (`--per-tx`).
    pub per_tx_requested: usize,
    /// `ft_transfer`s per transaction used (the distributor's limits may lower it).
    pub per_tx: usize,
    /// Transactions in flight per key.
    pub max_in_flight: usize,
    /// Devnet block time.
    pub block_time_ms: u64,
    /// Per-block gas limit in Tgas; `null` when lifted.
    pub gas_limit_tgas: Option<f64>,
    /// Whether `--lift-gas-limit` was given.
    pub gas_limit_lifted: bool,
    /// `ok`, `hang` or `null` (no webhooks).
    pub webhook: Option<String>,
}

/// The machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// `std::thread::available_parallelism`.
    pub nproc: usize,
    /// `PRETTY_NAME` of /etc/os-release, if readable.
    pub os: Option<String>,
    /// CPU architecture.
    pub arch: String,
}

/// Counts at the end of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Claims fed.
    pub fed: u64,
    /// Claims confirmed.
    pub confirmed: i64,
    /// Claims failed for good.
    pub failed: i64,
    /// Claims still open.
    pub open: i64,
    /// Seconds from start to the last claim settled.
    pub elapsed_s: f64,
    /// Devnet blocks produced.
    pub blocks: u64,
    /// Confirmed transfers per block.
    pub transfers_per_block: f64,
    /// Distributor: transactions (batches) signed.
    pub batches: u64,
    /// Distributor: transfers sent.
    pub transfers: u64,
    /// Distributor: rebroadcasts.
    pub rebroadcasts: u64,
    /// Distributor: transactions found dead.
    pub txs_dead: u64,
    /// Distributor: RPC errors.
    pub rpc_errors: u64,
}

/// Confirmations per second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Confirmed claims ÷ seconds from the first claim's creation to the last confirmation.
    pub overall_per_s: f64,
    /// Those seconds.
    pub span_s: f64,
    /// Sustained: mean of the 10-s windows of the feed after the first.
    pub sustained_mean_per_s: Option<f64>,
    /// Sustained: lowest of those windows.
    pub sustained_min_per_s: Option<f64>,
    /// Sustained: every 10-s window of the feed, the first included.
    pub windows_10s_per_s: Vec<f64>,
    /// With the gas limit: compute limit (= gas limit) ÷ compute per transfer ÷ block time.
    pub single_token_ceiling_per_s: Option<f64>,
    /// With the gas limit: Tgas burnt per confirmed transfer.
    pub tgas_per_transfer: Option<f64>,
    /// With the gas limit: `overall_per_s / single_token_ceiling_per_s`.
    pub ceiling_share: Option<f64>,
}

/// Seconds from pending to confirmed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50_s: f64,
    /// 95th percentile.
    pub p95_s: f64,
    /// 99th percentile.
    pub p99_s: f64,
}

/// Means of where a confirmed claim's time went, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeSplit {
    /// Claim created → its transaction signed and stored.
    pub queue_s: f64,
    /// Stored → first accepted broadcast.
    pub broadcast_s: f64,
    /// Stored → confirmed.
    pub settle_s: f64,
}

/// The webhook receiver's side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookSummary {
    /// `ok` or `hang`.
    pub mode: String,
    /// Requests the receiver got.
    pub received: u64,
    /// Deliveries the worker counted as done.
    pub delivered: u64,
    /// Failed attempts.
    pub failed_attempts: u64,
    /// Deliveries still pending at the end.
    pub pending: i64,
}

fn machine() -> Machine {
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim().trim_matches('"').to_string())
        });
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        os,
        arch: std::env::consts::ARCH.to_string(),
    }
}

fn webhook_name(mode: WebhookMode) -> &'static str {
    match mode {
        WebhookMode::Ok => "ok",
        WebhookMode::Hang => "hang",
    }
}

/// `path`: the per-second confirmations and their 10-s moving average over time, with the single-token
/// ceiling as a horizontal line when there is one. SVG, text as `<text>` (no font files needed).
fn write_chart(
    path: &Path,
    title: &str,
    samples: &[Sample],
    ceiling: Option<f64>,
) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let x_max = samples.last().map_or(0.0, |s| s.t_s).max(1.0);
    let y_max = samples
        .iter()
        .flat_map(|s| [s.per_s, s.avg10_per_s])
        .chain(ceiling)
        .fold(1.0, f64::max)
        * 1.3; // headroom for the legend
    let root = SVGBackend::new(path, (1000, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("transfers confirmed / s")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    let per_second = BLUE.mix(0.45);
    chart
        .draw_series(LineSeries::new(
            samples.iter().map(|s| (s.t_s, s.per_s)),
            per_second,
        ))?
        .label("per second")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], per_second));
    let average = RED.stroke_width(2);
    chart
        .draw_series(LineSeries::new(
            samples.iter().map(|s| (s.t_s, s.avg10_per_s)),
            average,
        ))?
        .label("10-s moving average")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], average));
    if let Some(c) = ceiling {
        let line = BLACK.stroke_width(1);
        chart
            .draw_series(LineSeries::new([(0.0, c), (x_max, c)], line))?
            .label(format!("single-token ceiling {c:.0}/s"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], line));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Writes `dir/report.json` and `dir/throughput.svg`; returns their paths.
fn write_report(dir: &Path, report: &Report) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    let svg = dir.join("throughput.svg");
    let s = &report.settings;
    let what = match (s.rate, s.duration_secs, s.claims) {
        (Some(r), Some(d), _) => format!("fed {r}/s for {d} s"),
        (_, _, Some(n)) => format!("backlog of {n}"),
        _ => s.mode.clone(),
    };
    let gas = s
        .gas_limit_tgas
        .map_or("gas limit lifted".to_string(), |g| {
            format!("{g:.0} Tgas blocks")
        });
    let title = format!(
        "payouts bench: {what}; {} keys × {}/tx, block {} ms, {gas}",
        s.keys, s.per_tx, s.block_time_ms
    );
    write_chart(
        &svg,
        &title,
        &report.series,
        report.throughput.single_token_ceiling_per_s,
    )
    .with_context(|| format!("writing {}", svg.display()))?;
    Ok((json, svg))
}

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
    let fed = match args.rate {
        None => {
            feed(&pool, args.receivers, 0, args.claims).await?;
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
    let ledger = check_ledger(transfers.iter().map(|t| t.event.memo.as_deref()), &claims);
    let landed = Landed::new(t.confirmed, ledger.transfers, t.span_seconds);
    println!(
        "claims and transfers: {:.0} claims/s, {:.0} transfers/s, {:.2} claims per transfer ({}, coalesce {})",
        landed.claims_per_s,
        landed.transfers_per_s,
        landed.claims_per_transfer,
        args.receivers.name(),
        args.coalesce
    );
    let p95_blocks = t.p95_seconds / (args.block_time_ms as f64 / 1000.0);
    println!("p95 in blocks:        {p95_blocks:.1}");
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

#[cfg(test)]
mod tests {
    use super::*;

    /// 30 s: 100 confirmations a second for 20 s, then none; one sample a second from t = 0.
    fn series() -> Vec<Sample> {
        let mut s: Vec<Sample> = (0..=30)
            .map(|t| Sample {
                t_s: t as f64,
                fed: 2_000,
                confirmed: 100 * t.min(20),
                open: 2_000 - 100 * t.min(20),
                failed: 0,
                ..Sample::default()
            })
            .collect();
        fill_rates(&mut s, MOVING_AVERAGE_SAMPLES);
        s
    }

    fn report() -> Report {
        let series = series();
        Report {
            started_at: "2026-11-23T10:00:00Z".parse().unwrap(),
            settings: Settings {
                mode: "sustained".into(),
                claims: None,
                rate: Some(100),
                duration_secs: Some(20),
                keys: 8,
                per_tx_requested: 83,
                per_tx: 83,
                max_in_flight: 32,
                block_time_ms: 500,
                gas_limit_tgas: Some(1000.0),
                gas_limit_lifted: false,
                webhook: Some("hang".into()),
            },
            machine: Machine {
                nproc: 2,
                os: Some("Debian GNU/Linux 12 (bookworm)".into()),
                arch: "x86_64".into(),
            },
            totals: Totals {
                fed: 2_000,
                confirmed: 2_000,
                failed: 0,
                open: 0,
                elapsed_s: 30.0,
                blocks: 60,
                transfers_per_block: 2_000.0 / 60.0,
                batches: 25,
                transfers: 2_000,
                rebroadcasts: 0,
                txs_dead: 0,
                rpc_errors: 0,
            },
            throughput: Throughput {
                overall_per_s: 100.0,
                span_s: 20.0,
                sustained_mean_per_s: Some(100.0),
                sustained_min_per_s: Some(100.0),
                windows_10s_per_s: window_rates(&series, WINDOW_SECS, 20.0),
                single_token_ceiling_per_s: Some(150.0),
                tgas_per_transfer: Some(2.5),
                ceiling_share: Some(100.0 / 150.0),
            },
            latency: Latency {
                p50_s: 2.25,
                p95_s: 2.5,
                p99_s: 3.0,
            },
            time_split: TimeSplit {
                queue_s: 0.25,
                broadcast_s: 0.5,
                settle_s: 2.0,
            },
            success_share: Some(1.0),
            duplicates: 0,
            ledger: LedgerCheck {
                transfers: 2_000,
                claims_paid: 2_000,
                ..LedgerCheck::default()
            },
            webhooks: Some(WebhookSummary {
                mode: "hang".into(),
                received: 10,
                delivered: 0,
                failed_attempts: 10,
                pending: 4_000,
            }),
            claims_and_transfers: None,
            series,
        }
    }

    #[test]
    fn per_second_rates_and_moving_average() {
        let s = series();
        assert_eq!(s[0].per_s, 0.0);
        assert_eq!(s[0].avg10_per_s, 0.0);
        assert!(s[1..=20].iter().all(|x| x.per_s == 100.0));
        assert!(s[21..].iter().all(|x| x.per_s == 0.0));
        // The first samples average over what there is; then over the trailing 10 s.
        assert_eq!(s[5].avg10_per_s, 100.0);
        assert_eq!(s[20].avg10_per_s, 100.0);
        assert_eq!(s[25].avg10_per_s, 50.0);
        assert_eq!(s[30].avg10_per_s, 0.0);
        // The incremental fill (during the run) agrees with the whole-series one.
        let mut inc = s.clone();
        for x in &mut inc {
            x.per_s = -1.0;
            x.avg10_per_s = -1.0;
        }
        for i in 0..inc.len() {
            fill_rates_at(&mut inc, i, MOVING_AVERAGE_SAMPLES);
        }
        assert_eq!(inc, s);
        // Uneven spacing: a rate is per second, not per sample.
        let mut two = vec![
            Sample::default(),
            Sample {
                t_s: 2.0,
                confirmed: 300,
                ..Sample::default()
            },
        ];
        fill_rates(&mut two, MOVING_AVERAGE_SAMPLES);
        assert_eq!(two[1].per_s, 150.0);
    }

    #[test]
    fn ten_second_windows() {
        let s = series();
        assert_eq!(window_rates(&s, WINDOW_SECS, 20.0), vec![100.0, 100.0]);
        assert_eq!(window_rates(&s, WINDOW_SECS, 30.0), vec![100.0, 100.0, 0.0]);
        // A last partial window is left out.
        assert_eq!(
            window_rates(&s[..26], WINDOW_SECS, 30.0),
            vec![100.0, 100.0]
        );
        assert!(window_rates(&[], WINDOW_SECS, 30.0).is_empty());
    }

    #[test]
    fn ledger_duplicates() {
        // Claims 1..=4; 1–3 confirmed.
        let claims: HashMap<i64, bool> = [(1, true), (2, true), (3, true), (4, false)].into();
        let clean = check_ledger(
            [
                Some("payouts:1"),
                Some("payouts:2 thanks"),
                Some("payouts:3"),
            ],
            &claims,
        );
        assert_eq!(clean.duplicates, 0);
        assert_eq!(clean.claims_paid, 3);
        assert_eq!(clean.confirmed_not_paid, 0);
        let bad = check_ledger(
            [
                Some("payouts:1"),
                Some("payouts:1"),
                Some("payouts:1"),
                Some("payouts:4"),
                Some("payouts:99"),
                Some("something else"),
                None,
            ],
            &claims,
        );
        assert_eq!(bad.transfers, 7);
        assert_eq!(bad.claims_paid_more_than_once, 1);
        assert_eq!(bad.transfers_naming_no_claim, 3);
        assert_eq!(bad.duplicates, 4);
        assert_eq!(bad.confirmed_not_paid, 2);
        assert_eq!(bad.paid_not_confirmed, 1);
        // A merged transfer pays every claim it names; a claim in two memos is a duplicate.
        let merged = check_ledger([Some("payouts:1,2"), Some("payouts:3,2")], &claims);
        assert_eq!(merged.transfers, 2);
        assert_eq!(merged.claims_paid, 3);
        assert_eq!(merged.claims_paid_more_than_once, 1);
        assert_eq!(merged.duplicates, 1);
        assert_eq!(merged.confirmed_not_paid, 0);
    }

    #[test]
    fn report_json_round_trip() {
        let r = report();
        let json = serde_json::to_string_pretty(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["latency"]["p99_s"], 3.0);
        assert_eq!(v["duplicates"], 0);
        assert_eq!(v["series"].as_array().unwrap().len(), 31);
        assert_eq!(v["settings"]["webhook"], "hang");
    }

    #[test]
    fn writes_report_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("nested/report");
        let (json, svg) = write_report(&out, &report()).unwrap();
        assert_eq!(json, out.join("report.json"));
        let back: Report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(back, report());
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("<svg"), "{text}");
        assert!(text.trim_end().ends_with("</svg>"));
        // per second, moving average, ceiling: three lines (plus the legend's samples).
        assert!(text.matches("<polyline").count() >= 3, "{text}");
        assert!(text.contains("transfers confirmed / s"));
        // Without a ceiling, and with an empty series, it still draws.
        let mut r = report();
        r.throughput.single_token_ceiling_per_s = None;
        r.series.clear();
        write_report(&out, &r).unwrap();
        assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    }
}
