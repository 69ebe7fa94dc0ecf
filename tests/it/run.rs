//! `payouts run` against the devnet: one process indexes, pays, serves the API and delivers webhooks; claims
//! sent through `POST /send-ft` are paid once, their webhooks arrive, and SIGTERM stops it cleanly.

use std::process::{Command, Stdio};
use std::time::Duration;

use payouts_devnet::{Devnet, DevnetConfig};
use payouts_store::claims::count_by_status;
use payouts_store::testdb::TestDb;
use payouts_store::ClaimStatus;
use payouts_webhooks::receiver::{Mode, Receiver};

const TOKEN: &str = "run-test-token-0123456789";
const SECRET: &str = "run-test-webhook-secret";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_indexes_pays_serves_and_notifies_in_one_process() {
    let keys = tempfile::tempdir().unwrap();
    let mut cfg = DevnetConfig::for_tests();
    cfg.key_dir = Some(keys.path().to_path_buf());
    let devnet = Devnet::start(cfg).await.unwrap();
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let rx = Receiver::start(
        "127.0.0.1:0".parse().unwrap(),
        SECRET.as_bytes(),
        Mode::Accept,
    )
    .await
    .unwrap();
    let port = free_port();
    let key_files: Vec<String> = devnet.treasury_key_files()[..2]
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    let config = keys.path().join("payouts.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = {db:?}\n\n[network]\nrpc_url = {rpc:?}\n\n[log]\nlevel = \"warn\"\n\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\nallowed_tokens = [\"token.devnet\"]\n\n\
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
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while http.get(format!("{base}/health")).send().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "API never came up");
        assert!(child.try_wait().unwrap().is_none(), "payouts run exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..5 {
        let resp = http
            .post(format!("{base}/send-ft"))
            .bearer_auth(TOKEN)
            .header("Idempotency-Key", format!("run-{i}"))
            .json(&serde_json::json!({"receiver_id": format!("user-{}.devnet", 2 * i), "amount": "1000"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    }
    assert!(
        rx.wait_until(Duration::from_secs(60), |r| r.len() >= 5)
            .await,
        "{} of 5 webhooks",
        rx.received().len()
    );
    let got = rx.received();
    assert!(got
        .iter()
        .all(|r| r.verified && r.body["type"] == "claim.confirmed"));
    let mut conn = payouts_store::get(&pool).await.unwrap();
    let counts = count_by_status(&mut conn).await.unwrap();
    assert_eq!(counts, vec![(ClaimStatus::Confirmed, 5)]);
    let status: serde_json::Value = http
        .get(format!("{base}/status"))
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
