//! The API under abuse, against the real binary: a flood of half-sent-header connections with the file limit
//! lowered to 1,024 cannot lock out `/health` and every slow socket is closed within the header timeout. (200
//! unauthenticated readers against the distributor's latency: the `latency` test binary.)

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
