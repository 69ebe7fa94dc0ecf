//! The worker against a real Postgres outbox and real HTTP receivers. Claims change state through the store,
//! as the indexer and distributor do.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use payouts_store::claims::{insert_claims, NewClaim};
use payouts_store::testdb::TestDb;
use payouts_store::webhooks::{
    endpoint_summaries, list_dead, redeliver, EndpointSummary, Redelivery,
};
use payouts_store::{PgPool, Yocto};
use payouts_webhooks::receiver::{Mode, Receiver};
use payouts_webhooks::{EndpointConfig, EventType, WebhookMetrics, Webhooks, WebhooksConfig};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "test-secret-0123456789";
const LOCAL: &str = "127.0.0.1:0";

fn endpoint(name: &str, url: String, env: &str) -> EndpointConfig {
    std::env::set_var(env, SECRET);
    EndpointConfig {
        name: name.into(),
        url,
        secret_env: env.into(),
        events: vec![EventType::ClaimCreated],
        max_in_flight: 1,
    }
}

fn fast(endpoints: Vec<EndpointConfig>) -> WebhooksConfig {
    WebhooksConfig {
        endpoints,
        max_attempts: 50,
        initial_backoff_ms: 20,
        max_backoff_ms: 100,
        // Receivers here answer at once. A timeout after the receiver has recorded its answer would
        // send the event again and break the exact counts and order asserted below, so it is long
        // (the hanging-endpoint test sets its own); the lease must outlast it.
        request_timeout_ms: 10_000,
        poll_interval_ms: 20,
        lease_ttl_ms: 30_000,
        ..WebhooksConfig::default()
    }
}

struct Worker {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), payouts_webhooks::WebhookError>>,
    metrics: Arc<WebhookMetrics>,
}

impl Worker {
    /// Starts delivering and waits until the endpoints are registered (the triggers write rows from then on).
    async fn start(pool: &PgPool, cfg: WebhooksConfig) -> Worker {
        let names: Vec<String> = cfg.endpoints.iter().map(|e| e.name.clone()).collect();
        let metrics = Arc::new(WebhookMetrics::default());
        let w = Webhooks::new(pool.clone(), cfg, metrics.clone()).unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(w.run(stop.clone()));
        let synced = |s: &[EndpointSummary]| {
            names
                .iter()
                .all(|n| s.iter().any(|e| e.enabled && &e.name == n))
        };
        let s = summaries_when(pool, Duration::from_secs(10), synced).await;
        assert!(synced(&s), "endpoints not synced: {s:?}");
        Worker {
            stop,
            task,
            metrics,
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Reads the endpoints' summaries until `done` holds or `within` has passed; the last ones read.
async fn summaries_when(
    pool: &PgPool,
    within: Duration,
    done: impl Fn(&[EndpointSummary]) -> bool,
) -> Vec<EndpointSummary> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut conn = payouts_store::get(pool).await.unwrap();
        let s = endpoint_summaries(&mut conn).await.unwrap();
        if done(&s) || tokio::time::Instant::now() > deadline {
            return s;
        }
        drop(conn);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn claims(pool: &PgPool, tag: &str, n: usize) -> Vec<i64> {
    let rows: Vec<NewClaim> = (0..n)
        .map(|i| {
            NewClaim::manual(
                &format!("{tag}-{i}"),
                "d",
                "token.devnet",
                &format!("user-{i}.devnet"),
                Yocto(1_000 + i as u128),
                None,
            )
        })
        .collect();
    let mut conn = payouts_store::get(pool).await.unwrap();
    insert_claims(&mut conn, &rows).await.unwrap();
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use payouts_store::schema::claims;
    claims::table
        .filter(claims::idempotency_key.like(format!("{tag}-%")))
        .order(claims::id)
        .select(claims::id)
        .load(&mut conn)
        .await
        .unwrap()
}

fn addr() -> SocketAddr {
    LOCAL.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_every_event_in_order_once_it_recovers() {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let rx = Receiver::start(addr(), SECRET.as_bytes(), Mode::Fail(500))
        .await
        .unwrap();
    let worker = Worker::start(&pool, fast(vec![endpoint("flaky", rx.url(), "WH_FLAKY")])).await;
    let ids = claims(&pool, "flaky", 30).await;
    // Let it fail a few times, then recover.
    assert!(
        rx.wait_until(Duration::from_secs(10), |r| r.len() >= 5)
            .await,
        "no retries seen"
    );
    rx.set_mode(Mode::Accept);
    assert!(
        rx.wait_until(Duration::from_secs(20), |_| rx.accepted().len()
            >= ids.len())
            .await,
        "only {} of {} delivered",
        rx.accepted().len(),
        ids.len()
    );

    let got = rx.received();
    assert!(got.iter().all(|r| r.verified), "a signature did not verify");
    // Retries of one event carry its id; every 2xx is a distinct event, in creation order.
    let accepted = rx.accepted();
    let claim_order: Vec<i64> = accepted
        .iter()
        .map(|r| r.body["data"]["claim"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(claim_order, ids);
    let mut by_id: HashMap<String, HashSet<i64>> = HashMap::new();
    for r in &got {
        assert_eq!(r.body["id"], r.event_id.as_str(), "body id = header id");
        by_id
            .entry(r.event_id.clone())
            .or_default()
            .insert(r.body["data"]["claim"]["id"].as_i64().unwrap());
    }
    assert_eq!(by_id.len(), ids.len(), "one event id per claim");
    assert!(by_id.values().all(|claims| claims.len() == 1));
    assert!(worker.metrics.failed_attempts.load(Ordering::Relaxed) >= 5);
    // Bodies carry the claim as created.
    for (r, id) in accepted.iter().zip(&ids) {
        let c = &r.body["data"]["claim"];
        assert_eq!(r.body["type"], "claim.created");
        assert_eq!(c["id"], *id);
        assert_eq!(c["status"], "pending");
        assert_eq!(c["token"], "token.devnet");
        assert_eq!(c["amount"], (1_000 + (id - ids[0])).to_string());
    }
    // The receiver answers before the worker records the delivery: wait for the outbox to settle.
    let counts = |s: &[EndpointSummary]| (s[0].pending, s[0].dead, s[0].delivered_total);
    let s = summaries_when(&pool, Duration::from_secs(10), |s| counts(s) == (0, 0, 30)).await;
    assert_eq!(counts(&s), (0, 0, 30));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_attempts_is_dead_until_redelivered() {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let rx = Receiver::start(addr(), SECRET.as_bytes(), Mode::Fail(503))
        .await
        .unwrap();
    let cfg = WebhooksConfig {
        max_attempts: 3,
        ..fast(vec![endpoint("dying", rx.url(), "WH_DYING")])
    };
    let worker = Worker::start(&pool, cfg).await;
    let ids = claims(&pool, "dying", 2).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let mut conn = payouts_store::get(&pool).await.unwrap();
        let dead = list_dead(&mut conn, 10).await.unwrap();
        if dead.len() == 2 {
            break dead;
        }
        assert!(tokio::time::Instant::now() < deadline, "not dead: {dead:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(dead.iter().all(|d| d.attempts == 3));
    assert_eq!(dead[0].last_http_status, Some(503));
    assert_eq!(rx.received().len(), 6, "three attempts each");
    rx.set_mode(Mode::Accept);
    let first = dead.iter().min_by_key(|d| d.id).unwrap();
    let mut conn = payouts_store::get(&pool).await.unwrap();
    assert!(matches!(
        redeliver(&mut conn, first.id).await.unwrap(),
        Redelivery::Queued(_)
    ));
    drop(conn);
    assert!(
        rx.wait_until(Duration::from_secs(10), |_| rx.accepted().len() == 1)
            .await
    );
    assert_eq!(rx.accepted()[0].event_id, first.event_id.to_string());
    assert_eq!(rx.accepted()[0].body["data"]["claim"]["id"], ids[0]);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_delays_only_itself() {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let hang = Receiver::start(addr(), SECRET.as_bytes(), Mode::Hang)
        .await
        .unwrap();
    let ok = Receiver::start(addr(), SECRET.as_bytes(), Mode::Accept)
        .await
        .unwrap();
    let cfg = WebhooksConfig {
        request_timeout_ms: 60_000,
        lease_ttl_ms: 120_000,
        ..fast(vec![
            endpoint("stuck", hang.url(), "WH_STUCK"),
            endpoint("healthy", ok.url(), "WH_HEALTHY"),
        ])
    };
    let worker = Worker::start(&pool, cfg).await;
    let ids = claims(&pool, "both", 200).await;
    assert!(
        ok.wait_until(Duration::from_secs(30), |r| r.len() >= ids.len())
            .await,
        "healthy endpoint got {} of {}",
        ok.received().len(),
        ids.len()
    );
    // Meanwhile the stuck endpoint holds its first request (its worker may reach it only after the
    // healthy one is done on a loaded host), and never gets a second while that one hangs.
    assert!(
        hang.wait_until(Duration::from_secs(10), |r| !r.is_empty())
            .await,
        "the stuck endpoint never got its first request"
    );
    assert_eq!(hang.received().len(), 1);
    let by_name = |s: &[EndpointSummary]| -> HashMap<String, (i64, i64)> {
        s.iter()
            .map(|e| (e.name.clone(), (e.pending, e.delivered_total)))
            .collect()
    };
    let s = by_name(
        &summaries_when(&pool, Duration::from_secs(10), |s| {
            by_name(s)["healthy"] == (0, 200)
        })
        .await,
    );
    assert_eq!(s["healthy"], (0, 200));
    assert_eq!(s["stuck"], (200, 0));
    assert_eq!(hang.received().len(), 1);
    worker.stop().await;
}
