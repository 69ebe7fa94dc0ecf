//! Indexer replay throughput against the devnet, beside the raw near-lake-framework stream of the same
//! blocks in the same run. Not a test: `cargo bench -p payouts-indexer --bench replay`.
//!
//! Env: `BENCH_BLOCKS` (default 10000), `BENCH_CLAIMS_PER_SECOND` (load while the chain is built, default 2000),
//! `BENCH_BLOCK_TIME_MS` (default 2), `BENCH_NEARDATA_DELAY_MS` (delay of every block request once the
//! chain is built, default 0), `BENCH_RULE_CONTRACT` (the rule's contract, default `claims.devnet`; another
//! account replays with no claims to write), `BENCH_FETCH_CONCURRENCY` (default: the indexer's),
//! `BENCH_BLOCKS_PER_COMMIT` (default 50; a comma list: the runs take its values in turn), `BENCH_RUNS` (replays
//! of the same chain, each into a fresh database and between two raw streams, default 1), `DATABASE_URL` (else a
//! throwaway cluster).

#[path = "support/cpu.rs"]
mod cpu;

use cpu::{postgres_cpu, postmaster_pid, proc_cpu};

use std::time::{Duration, Instant};

use payouts_devnet::{Devnet, Faults};
use payouts_indexer::replay::replay;
use payouts_indexer::rules::RuleConfig;
use payouts_indexer::source::{self, Fetch, SourceConfig};
use payouts_indexer::IndexerConfig;
use payouts_store::testdb::TestDb;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let blocks = env("BENCH_BLOCKS", 10_000);
    // The first run's database, made before the chain is built, so that whatever starting a throwaway cluster
    // leaves behind (the kernel writing back initdb's unsynced files, …) is over before anything is timed, as
    // for a replay into a running server.
    let mut first_db = Some(TestDb::new().await);
    let (devnet, _keys) = Devnet::start_for_tests(|c| {
        c.block_time_ms = env("BENCH_BLOCK_TIME_MS", 2);
        c.load.claims_per_second = env("BENCH_CLAIMS_PER_SECOND", 2_000) as f64;
    })
    .await
    .expect("devnet");
    let last = blocks + 1; // genesis is block 1
    let built = Instant::now();
    while !devnet
        .wait_for_height(last + 3, Duration::from_secs(5))
        .await
    {
        eprintln!(
            "building chain: at block {} of {}",
            devnet.final_height(),
            last + 3
        );
    }
    // Freeze the chain and stop the load so neither block production nor signing claims competes with
    // the measurement.
    devnet.set_load_rate(0.0);
    devnet.set_faults(Faults {
        block_delay_ms: 3_600_000,
        // A distant block source, like a public neardata endpoint.
        neardata_delay_ms: env("BENCH_NEARDATA_DELAY_MS", 0),
        ..devnet.faults()
    });
    eprintln!(
        "chain of {} blocks built in {:.1} s",
        devnet.final_height(),
        built.elapsed().as_secs_f64()
    );

    let source = SourceConfig::Fastnear {
        endpoint: devnet.rpc_url(),
    };
    let concurrency = std::env::var("BENCH_FETCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut raw_before = raw_stream(&source, 2, last, concurrency).await;

    let cfg = IndexerConfig {
        source: source.clone(),
        start_block_height: Some(2),
        rules: vec![RuleConfig {
            name: "claims".into(),
            // Another contract: the same replay with no claims to write (the database's share).
            contract: std::env::var("BENCH_RULE_CONTRACT")
                .unwrap_or_else(|_| "claims.devnet".into()),
            standard: "claims".into(),
            event: "claim".into(),
            receiver_field: "account_id".into(),
            amount_field: Some("amount".into()),
            fixed_amount: None,
            token: "token.devnet".into(),
            memo: None,
        }],
        fetch_concurrency: concurrency,
        ..IndexerConfig::default()
    };
    // One value, or a comma list the runs take in turn (compares batch sizes on the same chain).
    let per_commit: Vec<usize> = std::env::var("BENCH_BLOCKS_PER_COMMIT")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![50]);
    // Each run replays the same chain into a fresh database, between two raw streams of it.
    let runs = env("BENCH_RUNS", 1).max(1);
    let mut results: Vec<(f64, f64)> = vec![];
    for run in 1..=runs {
        let cfg = IndexerConfig {
            max_blocks_per_commit: per_commit[(run as usize - 1) % per_commit.len()],
            ..cfg.clone()
        };
        if runs > 1 {
            println!(
                "run {run} of {runs} ({} blocks per commit):",
                cfg.max_blocks_per_commit
            );
        }
        let db = match first_db.take() {
            Some(db) => db,
            None => TestDb::new().await,
        };
        let pool = db.pool().await;
        let postmaster = postmaster_pid(&db).await;
        let steal = steal_ticks();
        let cpu = Cpu::now(postmaster.as_deref());
        let report = replay(&pool, &cfg, 2, last, false, |_| {})
            .await
            .expect("replay");
        let replay_cpu = Cpu::since(&cpu, postmaster.as_deref());
        let stolen = steal.zip(steal_ticks()).map(|(a, b)| (b - a) / 100.0);
        let again = replay(&pool, &cfg, 2, last, false, |_| {})
            .await
            .expect("second replay");
        let cpu = Cpu::now(None);
        let raw_after = raw_stream(&source, 2, last, concurrency).await;
        let raw_cpu = Cpu::since(&cpu, None);

        let raw_best = blocks as f64 / raw_before.min(raw_after).as_secs_f64().max(1e-9);
        println!("blocks replayed:        {}", report.blocks);
        println!(
            "claims inserted:        {} (events {})",
            report.new_claims, report.events
        );
        println!(
            "replay:                 {:.0} blocks/s ({:.2} s)",
            report.blocks_per_second(),
            report.elapsed.as_secs_f64()
        );
        println!(
            "  time in scan:         {:.2} s, in DB commits: {:.2} s ({} commits)",
            report.scan_time.as_secs_f64(),
            report.commit_time.as_secs_f64(),
            report.commits
        );
        println!(
            "replay again (0 new):   {:.0} blocks/s, {} new rows",
            again.blocks_per_second(),
            again.new_claims
        );
        println!(
            "raw stream, best of 2:  {raw_best:.0} blocks/s (before {:.2} s, after {:.2} s)",
            raw_before.as_secs_f64(),
            raw_after.as_secs_f64()
        );
        println!(
            "replay / raw stream:    {:.2}",
            report.blocks_per_second() / raw_best
        );
        // On a CPU-bound machine shared with other work, CPU per block compares more steadily than wall time.
        if let (Some(replay_cpu), Some(raw_cpu)) = (replay_cpu, raw_cpu) {
            let per_block = |s: f64| s * 1e6 / blocks as f64;
            println!(
                "  CPU per block:        replay {:.0} µs (this process {:.0}, Postgres {}), raw stream after {:.0} µs",
                per_block(replay_cpu.process + replay_cpu.postgres.unwrap_or(0.0)),
                per_block(replay_cpu.process),
                replay_cpu
                    .postgres
                    .map_or("n/a".into(), |s| format!("{:.0}", per_block(s))),
                per_block(raw_cpu.process)
            );
        }
        if let Some(stolen) = stolen {
            // Time the hypervisor ran something else on our CPUs while they wanted to run: a noisy host.
            println!(
                "  CPU stolen by the host during the replay: {:.0} % of its wall time",
                stolen * 100.0 / report.elapsed.as_secs_f64()
            );
        }
        results.push((report.blocks_per_second(), raw_best));
        raw_before = raw_after;
    }
    if results.len() > 1 {
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let replay = median(results.iter().map(|r| r.0).collect());
        let raw = median(results.iter().map(|r| r.1).collect());
        let ratio = median(results.iter().map(|r| r.0 / r.1).collect());
        println!(
            "median of {} runs:      replay {replay:.0} blocks/s, raw stream {raw:.0} blocks/s, ratio {ratio:.2} \
             (replay >= 2,000 in {}, ratio >= 0.8 in {})",
            results.len(),
            results.iter().filter(|r| r.0 >= 2_000.0).count(),
            results.iter().filter(|r| r.0 / r.1 >= 0.8).count()
        );
    }
    devnet.shutdown().await;
}

/// CPU seconds used so far (Linux `/proc`): by this process (the devnet serving blocks, the streamer, the
/// replay) and by the Postgres server whose postmaster is given (its live processes and its reaped ones).
struct Cpu {
    process: f64,
    postgres: Option<f64>,
}

impl Cpu {
    fn now(postmaster: Option<&str>) -> Option<Self> {
        Some(Self {
            process: proc_cpu("self", false)?,
            postgres: postmaster.and_then(postgres_cpu),
        })
    }

    /// Used since `before`.
    fn since(before: &Option<Self>, postmaster: Option<&str>) -> Option<Self> {
        let (now, before) = (Self::now(postmaster)?, before.as_ref()?);
        Some(Self {
            process: now.process - before.process,
            postgres: now.postgres.zip(before.postgres).map(|(a, b)| a - b),
        })
    }
}

/// The machine's steal time so far (`/proc/stat`, all CPUs), in ticks.
fn steal_ticks() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    cpu.split_whitespace().nth(7)?.parse().ok()
}

/// Reads `from..=to` through the streamer and does nothing else.
async fn raw_stream(
    source: &SourceConfig,
    from: u64,
    to: u64,
    concurrency: Option<u64>,
) -> Duration {
    let started = Instant::now();
    let fetch = Fetch {
        concurrency,
        until: Some(to),
        ..Fetch::ahead(100)
    };
    let mut stream = source::start(source, from, fetch).await.expect("stream");
    while let Some(msg) = stream.blocks.recv().await {
        if msg.block.header.height >= to {
            break;
        }
    }
    stream.task.abort();
    started.elapsed()
}
