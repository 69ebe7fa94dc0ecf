//! `kill -9` of `payouts webhooks` between the state changes and their delivery: after a restart every event
//! arrives; a repeat carries the same event id.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use payouts_store::claims::{insert_claims, NewClaim};
use payouts_store::testdb::TestDb;
use payouts_store::webhooks::endpoint_summaries;
use payouts_store::{PgPool, Yocto};
use payouts_webhooks::receiver::{Mode, Receiver};

const SECRET: &str = "kill-test-webhook-secret";

fn spawn_worker(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_payouts"))
        .arg("webhooks")
        .arg("--config")
        .arg(config)
        .env_remove("DATABASE_URL")
        .env("KILL_TEST_WEBHOOK_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn add_claims(pool: &PgPool, tag: &str, n: usize) {
    let rows: Vec<NewClaim> = (0..n)
        .map(|i| {
            NewClaim::manual(
                &format!("{tag}-{i}"),
                "d",
                "token.devnet",
                "alice.devnet",
                Yocto(1 + i as u128),
                None,
            )
        })
        .collect();
    let mut conn = payouts_store::get(pool).await.unwrap();
    insert_claims(&mut conn, &rows).await.unwrap();
}

async fn wait_for(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    payouts_store::testdb::wait_until(within, what, async || {
        done().await.then_some(()).ok_or("not yet")
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_minus_nine_before_delivery_then_restart_delivers_every_event() {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    // First the receiver holds every request without answering: the worker is mid-delivery when killed.
    let rx = Receiver::start(
        "127.0.0.1:0".parse().unwrap(),
        SECRET.as_bytes(),
        Mode::Hang,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("payouts.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = {:?}\n\n[log]\nlevel = \"warn\"\n\n\
             [webhooks]\npoll_interval_ms = 20\ninitial_backoff_ms = 20\nmax_backoff_ms = 200\n\
             request_timeout_ms = 1000\nlease_ttl_ms = 1500\n\n\
             [[webhooks.endpoints]]\nname = \"backend\"\nurl = {:?}\nsecret_env = \"KILL_TEST_WEBHOOK_SECRET\"\n\
             events = [\"claim.created\"]\n",
            db.url().expose(),
            rx.url()
        ),
    )
    .unwrap();

    let mut child = spawn_worker(&config);
    wait_for(
        "the endpoint to be registered",
        Duration::from_secs(30),
        async || {
            let mut conn = payouts_store::get(&pool).await.unwrap();
            !endpoint_summaries(&mut conn).await.unwrap().is_empty()
        },
    )
    .await;
    add_claims(&pool, "before", 10).await;
    assert!(
        rx.wait_until(Duration::from_secs(30), |r| !r.is_empty())
            .await,
        "no delivery attempt"
    );
    child.kill().unwrap(); // SIGKILL, with a request in flight
    child.wait().unwrap();
    // State changes while no worker runs at all.
    add_claims(&pool, "while-dead", 10).await;

    rx.set_mode(Mode::Accept);
    let mut child = spawn_worker(&config);
    wait_for("every delivery", Duration::from_secs(60), async || {
        let mut conn = payouts_store::get(&pool).await.unwrap();
        let s = &endpoint_summaries(&mut conn).await.unwrap()[0];
        s.pending == 0 && s.delivered_total == 20
    })
    .await;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success(), "graceful stop");

    let got = rx.received();
    assert!(got.iter().all(|r| r.verified), "a signature did not verify");
    let accepted = rx.accepted();
    let ids: HashSet<&str> = accepted.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(ids.len(), 20, "every event delivered");
    // Any repeat (the request in flight at the kill) carries the same event id for the same claim.
    let mut claim_of: HashMap<&str, i64> = HashMap::new();
    for r in &got {
        let claim = r.body["data"]["claim"]["id"].as_i64().unwrap();
        assert_eq!(*claim_of.entry(r.event_id.as_str()).or_insert(claim), claim);
    }
    let keys: HashSet<&str> = accepted
        .iter()
        .map(|r| r.body["data"]["claim"]["idempotency_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 20);
}
