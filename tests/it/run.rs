//! `payouts run` against the devnet: one process indexes, pays, serves the API and delivers webhooks; claims
//! sent through `POST /send-ft` are paid once, their webhooks arrive, and SIGTERM stops it cleanly.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use payouts_devnet::Devnet;
use payouts_store::claims::count_by_status;
use payouts_store::testdb::TestDb;
use payouts_store::ClaimStatus;
use payouts_webhooks::receiver::{Mode, Receiver};

const TOKEN: &str = "run-test-token-0123456789";
const SECRET: &str = "run-test-webhook-secret";

/// Forwards the child's JSON log lines to this test's stderr and sends the address of the
/// `API listening` line (the socket it really bound, `[api] listen` being port 0).
fn watch_log(stderr: std::process::ChildStderr) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["fields"]["message"] == "API listening" {
                if let Some(addr) = v["fields"]["addr"].as_str() {
                    let _ = tx.send(addr.to_string());
                }
            }
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_indexes_pays_serves_and_notifies_in_one_process() {
    let (devnet, keys) = Devnet::start_for_tests(|_| {}).await.unwrap();
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let rx = Receiver::start(
        "127.0.0.1:0".parse().unwrap(),
        SECRET.as_bytes(),
        Mode::Accept,
    )
    .await
    .unwrap();
    let key_files: Vec<String> = devnet.treasury_key_files()[..2]
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    let config = keys.path().join("payouts.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = {db:?}\n\n[network]\nrpc_url = {rpc:?}\n\n[log]\nformat = \"json\"\nlevel = \"warn\"\n\n\
             [api]\nlisten = \"127.0.0.1:0\"\nallowed_tokens = [\"token.devnet\"]\n\n\
             [[api.tokens]]\nname = \"ops\"\nscopes = [\"read\", \"send\", \"admin\"]\ntoken_env = \"RUN_TEST_TOKEN\"\n\n\
             [indexer]\nstart_block_height = 1\n\n[indexer.source]\nkind = \"fastnear\"\nendpoint = {rpc:?}\n\n\
             [distributor]\nkey_files = [{keys}]\npoll_interval_ms = 20\nmax_batch_wait_ms = 200\n\n\
             [webhooks]\npoll_interval_ms = 20\n\n[[webhooks.endpoints]]\nname = \"backend\"\nurl = {url:?}\n\
             secret_env = \"RUN_TEST_WEBHOOK_SECRET\"\nevents = [\"claim.confirmed\"]\n",
            db = db.url().expose(),
            rpc = devnet.rpc_url(),
            keys = key_files.join(", "),
            url = rx.url(),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_payouts"))
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("DATABASE_URL")
        .env("RUN_TEST_TOKEN", TOKEN)
        .env("RUN_TEST_WEBHOOK_SECRET", SECRET)
        // RUST_LOG wins over `[log] level`: set it so the API's address line is always logged.
        .env("RUST_LOG", "warn,payouts_api::server=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let listening = watch_log(child.stderr.take().unwrap());

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let addr = loop {
        if let Ok(addr) = listening.try_recv() {
            break addr;
        }
        assert!(tokio::time::Instant::now() < deadline, "API never came up");
        assert!(child.try_wait().unwrap().is_none(), "payouts run exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let health = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let mut claim_ids = BTreeSet::new();
    for i in 0..5 {
        let resp = http
            .post(format!("{base}/send-ft"))
            .bearer_auth(TOKEN)
            .header("Idempotency-Key", format!("run-{i}"))
            .json(&serde_json::json!({"receiver_id": format!("user-{}.devnet", 2 * i), "amount": "1000"}))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(status, 202, "{body}");
        claim_ids.insert(body["id"].as_i64().unwrap());
    }
    assert_eq!(claim_ids.len(), 5);
    // Delivery is at least once (a request timed out on the worker's side after the receiver answered goes
    // out again, same event id): wait for one claim.confirmed per claim, compare distinct sets.
    let expected: BTreeSet<(String, i64)> = claim_ids
        .iter()
        .map(|id| ("claim.confirmed".to_string(), *id))
        .collect();
    let got = rx
        .wait_for_events(&expected, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(got.iter().all(|r| r.verified), "a signature did not verify");
    let mut conn = payouts_store::get(&pool).await.unwrap();
    let counts = count_by_status(&mut conn).await.unwrap();
    assert_eq!(counts, vec![(ClaimStatus::Confirmed, 5)]);
    let status: serde_json::Value = http
        .get(format!("{base}/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(status["indexer"].is_object(), "{status}");

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
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
    assert_eq!(paid, 5, "paid exactly once each");
    devnet.shutdown().await;
}
