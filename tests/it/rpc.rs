//! `payouts run` with a pool of RPC endpoints whose URLs and headers carry secrets: a dead one with a key in
//! its query string and a password in its user-info, and a live one with a key in its query string and one in
//! a header from the environment. Claims are paid once, and not one of the secrets appears in the process's
//! log (at debug level), `GET /status`, `GET /metrics`, the status rows in the database, or the error of a
//! configuration that names a bad endpoint.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use payouts_devnet::Devnet;
use payouts_store::claims::count_by_status;
use payouts_store::testdb::{wait_until, TestDb};
use payouts_store::ClaimStatus;

const TOKEN: &str = "rpc-test-token-0123456789";
const QUERY_SECRET: &str = "S3CRET";
const PASSWORD: &str = "PW5ECRETPW";
const HEADER_SECRET: &str = "H3ADER5ECRETVALUE";

fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn assert_clean(what: &str, text: &str) {
    for s in [QUERY_SECRET, PASSWORD, HEADER_SECRET] {
        assert!(
            !text.contains(s),
            "{what} shows the secret {s}: …{}…",
            text.find(s)
                .map(|i| &text[i.saturating_sub(200)..(i + 50).min(text.len())])
                .unwrap_or("")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_secrets_never_appear_in_logs_status_metrics_or_errors() {
    let (devnet, keys) = Devnet::start_for_tests(|_| {}).await.unwrap();
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let key_files: Vec<String> = devnet.treasury_key_files()[..2]
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    let dead = format!(
        "http://ops:{PASSWORD}@127.0.0.1:{}/rpc?apikey={QUERY_SECRET}",
        dead_port()
    );
    let live = format!("{}?apikey={QUERY_SECRET}", devnet.rpc_url());
    let config = keys.path().join("payouts.toml");
    let write = |rpc: &str| {
        std::fs::write(
            &config,
            format!(
                "[database]\nurl = {db:?}\n\n[network]\nchain_id = \"devnet\"\n{rpc}\n\n\
                 [log]\nformat = \"json\"\nlevel = \"debug\"\n\n\
                 [api]\nlisten = \"127.0.0.1:0\"\nallowed_tokens = [\"token.devnet\"]\n\n\
                 [[api.tokens]]\nname = \"ops\"\nscopes = [\"read\", \"send\", \"admin\"]\ntoken_env = \"RPC_TEST_TOKEN\"\n\n\
                 [indexer]\nstart_block_height = 1\n\n[indexer.source]\nkind = \"fastnear\"\nendpoint = {src:?}\n\n\
                 [distributor]\nkey_files = [{keys}]\npoll_interval_ms = 20\nmax_batch_wait_ms = 200\n",
                db = db.url().expose(),
                src = devnet.rpc_url(),
                keys = key_files.join(", "),
            ),
        )
        .unwrap();
    };

    // A bad endpoint: the configuration error names it without its secrets.
    write(&format!(
        "[[network.rpc]]\nurl = \"ftp://ops:{PASSWORD}@rpc.example.com/?apikey={QUERY_SECRET}\"\n"
    ));
    let out = Command::new(env!("CARGO_BIN_EXE_payouts"))
        .arg("--config")
        .arg(&config)
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(err.contains("network.rpc[0].url"), "{err}");
    assert_clean("a configuration error", &err);

    write(&format!(
        "[[network.rpc]]\nurl = {dead:?}\n\n\
         [[network.rpc]]\nname = \"provider\"\nurl = {live:?}\nheaders_env = {{ \"x-api-key\" = \"RPC_TEST_HEADER_KEY\" }}\n"
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_payouts"))
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("DATABASE_URL")
        .env("RPC_TEST_TOKEN", TOKEN)
        .env("RPC_TEST_HEADER_KEY", HEADER_SECRET)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stdout.take().unwrap()),
    ] {
        let (log, addr_tx) = (log.clone(), addr_tx.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v["fields"]["message"] == "API listening" {
                        if let Some(a) = v["fields"]["addr"].as_str() {
                            let _ = addr_tx.send(a.to_string());
                        }
                    }
                }
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let addr = loop {
        if let Ok(a) = addr_rx.try_recv() {
            break a;
        }
        assert!(tokio::time::Instant::now() < deadline, "API never came up");
        assert!(child.try_wait().unwrap().is_none(), "payouts run exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    for i in 0..20 {
        let resp = http
            .post(format!("{base}/send-ft"))
            .bearer_auth(TOKEN)
            .header("Idempotency-Key", format!("rpc-{i}"))
            .json(&serde_json::json!({"receiver_id": format!("user-{}.devnet", 2 * i), "amount": "1000"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
    }
    wait_until(Duration::from_secs(90), "20 claims paid", async || {
        assert!(child.try_wait().unwrap().is_none(), "payouts run exited");
        let mut conn = payouts_store::get(&pool).await.unwrap();
        let counts = count_by_status(&mut conn).await.unwrap();
        (counts == vec![(ClaimStatus::Confirmed, 20)])
            .then_some(())
            .ok_or(counts)
    })
    .await;
    // The status page shows both endpoints, the dead one failing, under names that hold no secret. Wait
    // for a heartbeat that has seen the dead endpoint fail.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status: serde_json::Value = http
            .get(format!("{base}/status"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let eps = &status["distributors"][0]["details"]["rpc_endpoints"];
        if eps[0]["errors"].as_u64().unwrap_or(0) > 0
            && eps[1]["requests"].as_u64().unwrap_or(0) > 0
        {
            assert!(
                eps[0]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with("http://127.0.0.1:"),
                "{eps}"
            );
            assert!(eps[0]["name"].as_str().unwrap().ends_with("/rpc"), "{eps}");
            assert_eq!(eps[1]["name"], "provider", "{eps}");
            assert!(eps[0]["last_error"].as_str().is_some(), "{eps}");
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "endpoints never shown: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_clean("GET /status", &status.to_string());
    let metrics = http
        .get(format!("{base}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("payouts_rpc_errors_total{endpoint=\"http://127.0.0.1:"),
        "{metrics}"
    );
    assert!(
        metrics.contains("payouts_rpc_requests_total{endpoint=\"provider\"}"),
        "{metrics}"
    );
    assert_clean("GET /metrics", &metrics);
    {
        let mut conn = payouts_store::get(&pool).await.unwrap();
        let rows = payouts_store::status::list_status(&mut conn).await.unwrap();
        assert_clean("distributor_status", &format!("{rows:?}"));
    }

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = log.lock().unwrap().clone();
    // The log is real: it shows the dead endpoint failing over (debug), under its redacted name.
    assert!(
        log.contains("rpc endpoint failed"),
        "no failover in the log"
    );
    assert_clean("the log", &log);
    let paid = devnet
        .ft_transfers()
        .iter()
        .filter(|t| {
            t.event
                .memo
                .as_deref()
                .is_some_and(|m| m.starts_with("payouts:"))
        })
        .count();
    assert_eq!(paid, 20, "paid exactly once each");
    devnet.shutdown().await;
}
