//! Replay throughput on real mainnet lake blocks, beside the raw streams of the same blocks. Not a test:
//! `cargo bench -p payouts-indexer --bench mainnet`.
//!
//! The chain: the mainnet fixture block (93,085,141: 4 shards, 7 transactions, 2 `token.sweat`
//! `ft_transfer` events; ~82 KB of Lake JSON) copied under `BENCH_BLOCKS` consecutive heights, each with its
//! own hash, `prev_hash` linking it to the one before, and its receipt ids renamed, so every block's two
//! events are new claims. Served two ways:
//! - `dir`: the Lake S3 layout on disk. Raw streams: near-lake-framework's own `streamer()` (its S3
//!   provider over our directory client) and our s3/dir stream (`source::start`, what the indexer and
//!   `payouts replay` read); then `payouts replay` with a rule matching the events.
//! - `http`: a local neardata-style server (`/v0/block/{h}`, `/v0/last_block/final/headers`) on its own
//!   thread. Raw stream: the fastnear source (near-lake-framework's FastNear streamer); then the replay.
//!
//! Figures per run: blocks/s, MB/s of block JSON, CPU µs per block of this process (the neardata server's
//! thread excluded) and of Postgres, bytes per block.
//!
//! Env: `BENCH_BLOCKS` (default 5000), `BENCH_RUNS` (default 3), `BENCH_SOURCES` (`dir,http`),
//! `DATABASE_URL` (else a throwaway cluster).

#[path = "support/cpu.rs"]
mod cpu;

use cpu::{postgres_cpu, postmaster_pid, proc_cpu};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use near_lake_framework::LakeConfigBuilder;
use payouts_indexer::replay::replay;
use payouts_indexer::source::{self, DirS3Client, Fetch, SourceConfig};
use payouts_indexer::IndexerConfig;
use payouts_store::testdb::TestDb;

#[allow(dead_code)]
#[path = "../tests/it/lakechain.rs"]
mod lakechain;

const BASE: u64 = 150_000_000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One measurement.
#[derive(Debug, Clone, Copy)]
struct Run {
    secs: f64,
    cpu_us_per_block: Option<f64>,
    postgres_us_per_block: Option<f64>,
}

#[tokio::main]
async fn main() {
    let blocks = env("BENCH_BLOCKS", 5_000);
    let runs = env("BENCH_RUNS", 3).max(1);
    let sources = std::env::var("BENCH_SOURCES").unwrap_or_else(|_| "dir,http".into());
    let last = BASE + blocks - 1;
    let lake = tempfile::tempdir().expect("temp dir");
    let built = Instant::now();
    let template = lakechain::Template::load();
    let mut bytes = 0u64;
    for h in BASE..=last {
        bytes += template.write(lake.path(), h, h - 1);
    }
    let per_block = bytes as f64 / blocks as f64;
    println!(
        "chain: {blocks} mainnet blocks ({:.1} KB of lake JSON each, {:.0} MB) built in {:.1} s",
        per_block / 1e3,
        bytes as f64 / 1e6,
        built.elapsed().as_secs_f64()
    );
    // The throwaway cluster starts before anything is timed.
    drop(TestDb::new().await);
    let mut cfg = IndexerConfig {
        start_block_height: Some(BASE),
        rules: vec![lakechain::sweat_rule()],
        ..IndexerConfig::default()
    };

    let print = |what: &str, r: &Run, bytes_per_block: f64| {
        let bps = blocks as f64 / r.secs;
        println!(
            "  {what:<34} {bps:>7.0} blocks/s {:>6.1} MB/s  CPU {:>5} µs/block (Postgres {:>4})  {:.1} KB/block",
            bps * bytes_per_block / 1e6,
            r.cpu_us_per_block.map_or("n/a".into(), |c| format!("{c:.0}")),
            r.postgres_us_per_block.map_or("n/a".into(), |c| format!("{c:.0}")),
            bytes_per_block / 1e3,
        );
    };
    let mut summary: Vec<(String, Vec<f64>)> = vec![];
    let mut note = |name: &str, r: &Run| {
        let bps = blocks as f64 / r.secs;
        match summary.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => v.push(bps),
            None => summary.push((name.to_string(), vec![bps])),
        }
    };

    if sources.contains("dir") {
        let dir = SourceConfig::Dir {
            path: lake.path().to_path_buf(),
        };
        cfg.source = dir.clone();
        for run in 1..=runs {
            println!("dir source, run {run} of {runs}:");
            let r = measure(None, || framework_dir(lake.path(), BASE, last)).await;
            print("raw near-lake-framework streamer()", &r, per_block);
            note("dir raw framework streamer()", &r);
            let r = measure(None, || raw(&dir, BASE, last)).await;
            print("raw s3/dir stream (source::start)", &r, per_block);
            note("dir raw source::start", &r);
            let fresh = TestDb::new().await;
            let pool = fresh.pool().await;
            let pm = postmaster_pid(&fresh).await;
            let r = measure(pm.as_deref(), || async {
                let rep = replay(&pool, &cfg, BASE, last, false, |_| {})
                    .await
                    .expect("replay");
                assert_eq!(rep.new_claims, 2 * blocks, "two claims a block");
            })
            .await;
            print("payouts replay (2 claims a block)", &r, per_block);
            note("dir replay", &r);
        }
    }
    if sources.contains("http") {
        let server = Neardata::start(lake.path().to_path_buf(), last);
        let http = SourceConfig::Fastnear {
            endpoint: server.url.clone(),
        };
        cfg.source = http.clone();
        for run in 1..=runs {
            println!("http (neardata-style) source, run {run} of {runs}:");
            let server_cpu = server.cpu();
            let (bytes_before, served_before) = server.counts();
            let mut r = measure(None, || raw(&http, BASE, last)).await;
            let (bytes_after, served_after) = server.counts();
            let http_per_block = (bytes_after - bytes_before) as f64 / blocks as f64;
            println!(
                "  ({} requests for {blocks} blocks, {:.1} KB of JSON a block)",
                served_after - served_before,
                http_per_block / 1e3
            );
            r.cpu_us_per_block = r
                .cpu_us_per_block
                .map(|c| c - (server.cpu() - server_cpu) * 1e6 / blocks as f64);
            print("raw fastnear stream (framework)", &r, http_per_block);
            note("http raw fastnear stream", &r);
            let fresh = TestDb::new().await;
            let pool = fresh.pool().await;
            let pm = postmaster_pid(&fresh).await;
            let server_cpu = server.cpu();
            let mut r = measure(pm.as_deref(), || async {
                let rep = replay(&pool, &cfg, BASE, last, false, |_| {})
                    .await
                    .expect("replay");
                assert_eq!(rep.new_claims, 2 * blocks, "two claims a block");
            })
            .await;
            r.cpu_us_per_block = r
                .cpu_us_per_block
                .map(|c| c - (server.cpu() - server_cpu) * 1e6 / blocks as f64);
            print("payouts replay (2 claims a block)", &r, http_per_block);
            note("http replay", &r);
        }
    }
    println!("medians over {runs} runs (blocks/s):");
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (name, v) in &summary {
        println!("  {name:<32} {:>7.0}  (runs: {v:.0?})", median(v));
    }
    let ratio = |a: &str, b: &str| {
        let find = |n: &str| summary.iter().find(|(x, _)| x == n).map(|(_, v)| median(v));
        find(a).zip(find(b)).map(|(a, b)| a / b)
    };
    if let Some(r) = ratio("dir replay", "dir raw framework streamer()") {
        println!("  dir: replay / raw framework streamer()  {r:.2}");
    }
    if let Some(r) = ratio("dir replay", "dir raw source::start") {
        println!("  dir: replay / raw source::start         {r:.2}");
    }
    if let Some(r) = ratio("http replay", "http raw fastnear stream") {
        println!("  http: replay / raw fastnear stream      {r:.2}");
    }
}

/// Times `f`, with the CPU this process (and the Postgres server of `postmaster`) used meanwhile.
async fn measure<F, Fut>(postmaster: Option<&str>, f: F) -> Run
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let blocks = env("BENCH_BLOCKS", 5_000) as f64;
    let cpu = proc_cpu("self", false);
    let pg = postmaster.and_then(postgres_cpu);
    let started = Instant::now();
    f().await;
    let secs = started.elapsed().as_secs_f64();
    let per = |s: f64| s * 1e6 / blocks;
    Run {
        secs,
        cpu_us_per_block: cpu.zip(proc_cpu("self", false)).map(|(a, b)| per(b - a)),
        postgres_us_per_block: pg
            .zip(postmaster.and_then(postgres_cpu))
            .map(|(a, b)| per(b - a)),
    }
}

/// Reads `from..=to` through `source::start` and does nothing else.
async fn raw(source: &SourceConfig, from: u64, to: u64) {
    let fetch = Fetch {
        until: Some(to),
        ..Fetch::ahead(100)
    };
    let mut stream = source::start(source, from, fetch).await.expect("stream");
    while let Some(msg) = stream.blocks.recv().await {
        if msg.block.header.height >= to {
            break;
        }
    }
}

/// Reads `from..=to` with near-lake-framework's own `streamer()` (its S3 provider, over our directory
/// client), on a runtime of its own as `source::start` does.
async fn framework_dir(dir: &Path, from: u64, to: u64) {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let cfg = LakeConfigBuilder::default()
                .s3_bucket_name("local")
                .s3_region_name("local")
                .start_block_height(from)
                .blocks_preload_pool_size(100)
                .s3_client(DirS3Client::new(&dir))
                .build()
                .expect("lake config");
            let (_task, mut blocks) = near_lake_framework::streamer(cfg);
            while let Some(msg) = blocks.recv().await {
                if msg.block.header.height >= to {
                    break;
                }
            }
        });
        rt.shutdown_background();
    })
    .await
    .expect("framework stream");
}

/// A neardata-style HTTP server over the chain on disk, on a thread of its own (HTTP/1.1, keep-alive).
struct Neardata {
    url: String,
    bytes: Arc<AtomicU64>,
    served: Arc<AtomicU64>,
    cpu_ticks: Arc<AtomicU64>,
}

impl Neardata {
    fn start(dir: PathBuf, last: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let bytes = Arc::new(AtomicU64::new(0));
        let served = Arc::new(AtomicU64::new(0));
        let cpu_ticks = Arc::new(AtomicU64::new(0));
        let (b, s, c) = (bytes.clone(), served.clone(), cpu_ticks.clone());
        let dir = Arc::new(dir);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (dir, b, s, c) = (dir.clone(), b.clone(), s.clone(), c.clone());
                // One thread per connection: the fastnear source keeps a few connections open.
                std::thread::spawn(move || serve(conn, &dir, last, &b, &s, &c));
            }
        });
        Self {
            url,
            bytes,
            served,
            cpu_ticks,
        }
    }

    /// Bytes of bodies and requests served so far.
    fn counts(&self) -> (u64, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.served.load(Ordering::Relaxed),
        )
    }

    /// CPU seconds the server's threads used so far.
    fn cpu(&self) -> f64 {
        self.cpu_ticks.load(Ordering::Relaxed) as f64 / 100.0
    }
}

fn serve(
    mut conn: TcpStream,
    dir: &Path,
    last: u64,
    bytes: &AtomicU64,
    served: &AtomicU64,
    cpu_ticks: &AtomicU64,
) {
    let _ = conn.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut ticks_before = thread_ticks();
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    continue;
                }
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let path = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("/")
            .to_string();
        let body = answer(dir, last, &path);
        let (status, body) = match body {
            Some(b) => ("200 OK", b),
            None => (
                "404 Not Found",
                br#"{"error":"not found","type":"NOT_FOUND"}"#.to_vec(),
            ),
        };
        let header = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if conn.write_all(header.as_bytes()).is_err() || conn.write_all(&body).is_err() {
            return;
        }
        bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        served.fetch_add(1, Ordering::Relaxed);
        let now = thread_ticks();
        cpu_ticks.fetch_add(now.saturating_sub(ticks_before), Ordering::Relaxed);
        ticks_before = now;
    }
}

fn answer(dir: &Path, last: u64, path: &str) -> Option<Vec<u8>> {
    let read = |h: u64, f: &str| std::fs::read(dir.join(format!("{h:012}/{f}"))).ok();
    if path == "/v0/last_block/final/headers" {
        return read(last, "block.json");
    }
    let h: u64 = path.strip_prefix("/v0/block/")?.parse().ok()?;
    if h > last {
        return None;
    }
    let Some(block) = read(h, "block.json") else {
        return Some(b"null".to_vec());
    };
    let mut out = Vec::with_capacity(100_000);
    out.extend_from_slice(b"{\"block\":");
    out.extend_from_slice(&block);
    out.extend_from_slice(b",\"shards\":[");
    for i in 0.. {
        let Some(shard) = read(h, &format!("shard_{i}.json")) else {
            break;
        };
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&shard);
    }
    out.extend_from_slice(b"]}");
    Some(out)
}

/// utime + stime of the calling thread, in ticks.
fn thread_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else {
        return 0;
    };
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, r)| r.split_whitespace().collect());
    let f = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    f(11) + f(12)
}
