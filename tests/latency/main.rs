//! Payout latency under 200 unauthenticated readers, against the real `payouts run`: the readers get 429s
//! (with `Retry-After`) and the distributor's created → confirmed latency stays within 1.5× of the idle runs.
//!
//! A test binary of its own, so no other test of the suite runs beside it (cargo runs test binaries one
//! after another), and the idle and loaded phases are interleaved (idle, loaded, loaded, idle, …), so
//! whatever else loads the host falls on both alike. The readers run on a runtime of their own, so they do
//! not delay the in-process devnet's block production by sharing its worker threads: what is measured is
//! what they do to the service.

#[path = "../it/child.rs"]
#[allow(dead_code)]
mod child;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use payouts_store::testdb::TestDb;
use tokio::sync::watch;

use crate::child::{api_addr, lines};

const TOKEN: &str = "latency-test-token-0123456789";
const READERS: usize = 200;
/// Claims per phase; eight phases, four of each kind.
const CLAIMS: usize = 8;
const PHASES: [bool; 8] = [false, true, true, false, false, true, true, false];

/// Sends `n` payouts through `POST /send-ft`, one every 50 ms (a phase spans several blocks); returns their
/// claim ids.
async fn send_claims(http: &reqwest::Client, base: &str, tag: &str, n: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        // A request the server never read (its connection closed under us) is sent again with the same
        // Idempotency-Key, as any client should: it can never pay twice.
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            match http
                .post(format!("{base}/send-ft"))
                .bearer_auth(TOKEN)
                .header("Idempotency-Key", format!("{tag}-{i}"))
                .json(&serde_json::json!({"receiver_id": format!("user-{}.devnet", 2 * (i % 20)), "amount": "1000"}))
                .send()
                .await
            {
                Ok(resp) => break resp,
                Err(e) if attempt < 3 => eprintln!("{tag}-{i}: {e:?}; sending again"),
                Err(e) => panic!("{tag}-{i}: {e:?}"),
            }
        };
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(status == 202 || (attempt > 1 && status == 200), "{body}");
        ids.push(body["id"].as_i64().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ids
}

/// Waits until every claim of `ids` is confirmed; returns the latencies (created → confirmed, both database
/// timestamps).
async fn latencies(pool: &payouts_store::PgPool, ids: &[i64]) -> Vec<Duration> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut conn = payouts_store::get(pool).await.unwrap();
        let mut done = Vec::new();
        for id in ids {
            let c = payouts_store::claims::get_claim(&mut conn, payouts_store::ClaimId(*id))
                .await
                .unwrap()
                .unwrap();
            if let Some(at) = c.confirmed_at {
                done.push((at - c.created_at).to_std().unwrap_or_default());
            }
        }
        if done.len() == ids.len() {
            return done;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} claims confirmed",
            done.len(),
            ids.len()
        );
        drop(conn);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn median(d: &mut [Duration]) -> Duration {
    d.sort();
    d[d.len() / 2]
}

fn mean(d: &[Duration]) -> Duration {
    d.iter().sum::<Duration>() / u32::try_from(d.len().max(1)).unwrap()
}

/// Answers seen by the readers: 200, 429, anything else, transport errors.
type Counts = Arc<[AtomicU64; 4]>;

/// Starts `READERS` readers on a runtime of their own (one thread). Each has its own connection and reads as
/// fast as the answers come while `active` is true, and idles otherwise.
fn start_readers(base: String, active: watch::Receiver<bool>, counts: Counts) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut readers = Vec::with_capacity(READERS);
            for r in 0..READERS {
                let (mut active, counts, base) = (active.clone(), counts.clone(), base.clone());
                // Built before the first phase: building 200 clients is not what a phase should measure.
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .pool_idle_timeout(Duration::from_secs(1))
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                readers.push(tokio::spawn(async move {
                    let paths = [
                        "/status",
                        "/claims",
                        "/metrics",
                        "/claims?token=unknown.devnet",
                        "/incidents",
                    ];
                    let mut i = r;
                    loop {
                        // Idle phases: wait until readers are wanted again; the test's end closes the channel.
                        if active.wait_for(|a| *a).await.is_err() {
                            return;
                        }
                        let path = paths[i % paths.len()];
                        i += 1;
                        let slot = match client.get(format!("{base}{path}")).send().await {
                            Ok(resp) => match resp.status().as_u16() {
                                200 => 0,
                                429 => {
                                    assert!(resp.headers().contains_key("retry-after"));
                                    1
                                }
                                _ => 2,
                            },
                            Err(e) => {
                                if counts[3].load(Ordering::Relaxed) < 3 {
                                    eprintln!("reader {r} {path}: {e:?}");
                                }
                                3
                            }
                        };
                        counts[slot].fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            for r in readers {
                r.await.unwrap();
            }
        });
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_unauthenticated_readers_get_429s_and_cannot_slow_payouts() {
    let (devnet, keys) = payouts_devnet::Devnet::start_for_tests(|_| {})
        .await
        .unwrap();
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let key_files: Vec<String> = devnet.treasury_key_files()[..2]
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    let config = keys.path().join("payouts.toml");
    // Reads and metrics opened, the harder case: what gets past the per-address limit reaches the database.
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = {db:?}\n\n[network]\nrpc_url = {rpc:?}\n\n[log]\nformat = \"json\"\nlevel = \"warn\"\n\n\
             [api]\nlisten = \"127.0.0.1:0\"\nallowed_tokens = [\"token.devnet\"]\nready_max_lag_blocks = 0\n\
             read_requires_token = false\nmetrics_open = true\n\n\
             [[api.tokens]]\nname = \"ops\"\nscopes = [\"read\", \"send\"]\ntoken_env = \"LATENCY_TEST_TOKEN\"\n\n\
             [indexer]\nstart_block_height = 1\n\n[indexer.source]\nkind = \"fastnear\"\nendpoint = {rpc:?}\n\n\
             [distributor]\nkey_files = [{keys}]\npoll_interval_ms = 20\nmax_batch_wait_ms = 200\n",
            db = db.url().expose(),
            rpc = devnet.rpc_url(),
            keys = key_files.join(", "),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_payouts"))
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("DATABASE_URL")
        .env("LATENCY_TEST_TOKEN", TOKEN)
        .env("RUST_LOG", "warn,payouts_api::server=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = lines(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let addr = api_addr(&mut child, &log, &mut seen);
    // Keeps draining the child's log (and shows its warnings).
    std::thread::spawn(move || {
        for line in log {
            eprintln!("server: {}", &line[..line.len().min(400)]);
        }
    });
    let base = format!("http://{addr}");
    // Idle connections are closed by the server after api.keep_alive_timeout_ms (5 s): a client keeps its
    // idle ones for less, so it never sends on a connection being closed.
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(1))
        .build()
        .unwrap();

    // Warm-up: the first batch, registrations, connections.
    latencies(&pool, &send_claims(&http, &base, "warm", 5).await).await;

    let (active_tx, active) = watch::channel(false);
    let counts: Counts = Arc::new(Default::default());
    start_readers(base.clone(), active, counts.clone());
    let (mut idle, mut loaded) = (Vec::new(), Vec::new());
    let mut loaded_for = Duration::ZERO;
    for (phase, with_readers) in PHASES.into_iter().enumerate() {
        active_tx.send_replace(with_readers);
        if with_readers {
            // The readers are all at it (about one answer each) before the phase's payouts are sent.
            let answered = |c: &Counts| c.iter().map(|n| n.load(Ordering::Relaxed)).sum::<u64>();
            let (from, deadline) = (answered(&counts), Instant::now() + Duration::from_secs(30));
            while answered(&counts) < from + READERS as u64 {
                assert!(Instant::now() < deadline, "the readers never got going");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let started = Instant::now();
        let tag = format!("phase{phase}");
        let got = latencies(&pool, &send_claims(&http, &base, &tag, CLAIMS).await).await;
        if with_readers {
            loaded_for += started.elapsed();
            loaded.extend(got);
        } else {
            idle.extend(got);
        }
    }
    drop(active_tx);
    let [ok, limited, other, failed] = [0, 1, 2, 3].map(|i| counts[i].load(Ordering::Relaxed));
    let (idle_p50, loaded_p50) = (median(&mut idle), median(&mut loaded));
    eprintln!(
        "payout latency idle: p50 {idle_p50:?} mean {:?}; with {READERS} readers: p50 {loaded_p50:?} mean {:?} \
         ({:.2}x); readers over {loaded_for:?}: {ok} x 200, {limited} x 429, {other} other, {failed} failed",
        mean(&idle),
        mean(&loaded),
        loaded_p50.as_secs_f64() / idle_p50.as_secs_f64(),
    );
    assert!(limited > 0, "no 429 for {READERS} readers");
    assert_eq!(other, 0, "readers got answers other than 200/429");
    assert!(
        loaded_p50.as_secs_f64() <= 1.5 * idle_p50.as_secs_f64(),
        "payout latency p50 {loaded_p50:?} under {READERS} readers vs {idle_p50:?} idle"
    );
    crate::child::stop(&mut child, Duration::from_secs(20));
    devnet.shutdown().await;
}
