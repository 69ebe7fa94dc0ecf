//! The API under abuse, against the real binary: a flood of half-sent-header connections with the file limit
//! lowered to 1,024 cannot lock out `/health` and every slow socket is closed within the header timeout; 200
//! unauthenticated readers get 429s and cannot slow the distributor's payouts down.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use payouts_store::testdb::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::child::{api_addr, lines};

const TOKEN: &str = "limits-test-token-0123456789";

/// Times one `GET /health` on a fresh connection.
async fn health(addr: &str) -> (u16, Duration) {
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let status = client
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    (status, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_flood_with_1024_files_cannot_lock_out_health() {
    const SLOW: usize = 2_000;
    const HEADER_TIMEOUT_MS: u64 = 2_000;
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("payouts.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = {db:?}\n\n[network]\nrpc_url = \"http://127.0.0.1:9\"\n\n\
             [log]\nformat = \"json\"\nlevel = \"info\"\n\n\
             [api]\nlisten = \"127.0.0.1:0\"\nready_max_lag_blocks = 0\nheader_read_timeout_ms = {HEADER_TIMEOUT_MS}\n\
             max_connections = 4096\n\n\
             [[api.tokens]]\nname = \"ops\"\nscopes = [\"read\"]\ntoken_env = \"LIMITS_TEST_TOKEN\"\n",
            db = db.url().expose(),
        ),
    )
    .unwrap();
    // The server's file limit is 1,024 (soft and hard): more sockets than that would exhaust it.
    let mut child = Command::new("prlimit")
        .arg("--nofile=1024:1024")
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_payouts"))
        .args(["api", "--config"])
        .arg(&config)
        .env_remove("DATABASE_URL")
        .env("LIMITS_TEST_TOKEN", TOKEN)
        .env("RUST_LOG", "warn,payouts_api::server=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs the server with a lowered file limit");
    let log = lines(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let addr = api_addr(&mut child, &log, &mut seen);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    assert!(nofile.split_whitespace().nth(3) == Some("1024"), "{nofile}");
    // api.max_connections = 4096 was lowered to fit the limit.
    assert!(
        seen.iter()
            .any(|l| l.contains("api.max_connections lowered to fit the open-files limit")),
        "{seen:#?}"
    );

    // 2,000 connections, each with the start of a request whose headers never end. Each socket is watched
    // from the moment it is opened, so a close is seen when it happens (not when the flood is over: on a
    // loaded host opening 2,000 sockets takes longer than the header timeout).
    //
    // Every slow socket must be closed by the server within the header timeout, counted from when it
    // connected (the server's timer starts when it accepts, which on a loaded 2-core machine can be a
    // moment later: 2 s of slack; the median shows the timeout itself).
    let limit = Duration::from_millis(HEADER_TIMEOUT_MS) + Duration::from_secs(2);
    let mut tasks = Vec::with_capacity(SLOW);
    let flood_started = Instant::now();
    for i in 0..SLOW {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let opened = Instant::now();
        // A write to a socket the server already dropped (evicted) may fail: that one is closed already.
        let _ = s
            .write_all(
                format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-{i}: ").as_bytes(),
            )
            .await;
        tasks.push(tokio::spawn(async move {
            let mut buf = [0u8; 256];
            let deadline = tokio::time::Instant::from_std(opened + limit + Duration::from_secs(5));
            loop {
                match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return Some(opened.elapsed()),
                    // An error answer (e.g. 408) before the close is fine too.
                    Ok(Ok(_)) => continue,
                    Err(_) => return None,
                }
            }
        }));
    }
    let flood_took = flood_started.elapsed();

    // /health answers at once, on a fresh connection, while the flood is open.
    for _ in 0..3 {
        let (status, took) = health(&addr).await;
        assert_eq!(status, 200, "/health during the flood");
        assert!(
            took < Duration::from_secs(1),
            "/health took {took:?} during the flood"
        );
    }

    let mut closed_after = Vec::with_capacity(SLOW);
    for t in tasks {
        closed_after.push(t.await.unwrap().expect("a slow socket was never closed"));
    }
    closed_after.sort();
    let slowest = *closed_after.last().unwrap();
    eprintln!(
        "flood of {SLOW} opened in {:?}; closed after: median {:?}, slowest {slowest:?}",
        flood_took,
        closed_after[SLOW / 2],
    );
    assert!(
        slowest <= limit,
        "a slow socket stayed open {slowest:?} (header timeout {HEADER_TIMEOUT_MS} ms)"
    );
    let (status, took) = health(&addr).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(child.try_wait().unwrap().is_none(), "the server died");
    crate::child::stop(&mut child, Duration::from_secs(20));
}

/// Sends `n` manual claims through `POST /send-ft` at once; returns their ids.
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
    }
    ids
}

/// Waits until every claim of `ids` is confirmed; returns the sorted latencies (created → confirmed, both
/// database timestamps).
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
            done.sort();
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

fn mean(d: &[Duration]) -> Duration {
    d.iter().sum::<Duration>() / u32::try_from(d.len().max(1)).unwrap()
}

// Ignored in the default suite: it compares payout latency idle vs under readers, and the other tests of this
// binary running beside it on a 2-core CI host load one phase and not the other (CI saw 616 ms vs 199 ms
// idle). Run it on its own: `cargo test --test it api_limits::two_hundred -- --ignored`.
#[ignore = "latency ratio; run alone with --ignored (other tests on the host skew one phase)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_unauthenticated_readers_get_429s_and_cannot_slow_payouts() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    const READERS: usize = 200;
    const CLAIMS: usize = 30;
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
             [[api.tokens]]\nname = \"ops\"\nscopes = [\"read\", \"send\"]\ntoken_env = \"LIMITS_TEST_TOKEN\"\n\n\
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
        .env("LIMITS_TEST_TOKEN", TOKEN)
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

    // Warm-up (first batch, registrations, connections), then the idle run.
    latencies(&pool, &send_claims(&http, &base, "warm", 5).await).await;
    let idle = latencies(&pool, &send_claims(&http, &base, "idle", CLAIMS).await).await;

    // 200 readers, each on its own connection, as fast as the answers come.
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
    let mut readers = Vec::with_capacity(READERS);
    for r in 0..READERS {
        let (stop, counts, base) = (stop.clone(), counts.clone(), base.clone());
        readers.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let paths = [
                "/status",
                "/claims",
                "/metrics",
                "/claims?token=unknown.devnet",
                "/incidents",
            ];
            let mut i = r;
            while !stop.load(Ordering::Relaxed) {
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
    let loaded_started = Instant::now();
    let sent = send_claims(&http, &base, "loaded", CLAIMS).await;
    let loaded = latencies(&pool, &sent).await;
    let loaded_for = loaded_started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    let [ok, limited, other, failed] = [0, 1, 2, 3].map(|i| counts[i].load(Ordering::Relaxed));
    let (idle_p50, loaded_p50) = (idle[CLAIMS / 2], loaded[CLAIMS / 2]);
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
