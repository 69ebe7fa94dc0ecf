//! `/status`, `/ready` and `/metrics`: figures from the database, the in-process indexer and distributor,
//! and the chain head over JSON-RPC (a real devnet, and an unreachable endpoint).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use payouts_devnet::Devnet;
use payouts_distributor::DistributorMetrics;
use payouts_indexer::metrics::CommitStats;
use payouts_indexer::IndexerMetrics;
use payouts_store::claims::{update_claims, ClaimUpdate};
use payouts_store::cursor::advance_cursor;
use payouts_store::keys::{lease_keys, register_keys};
use payouts_store::status::{report_error, report_heartbeat, report_started};
use payouts_store::transactions::{insert_tx, NewTx};
use payouts_store::{AsyncPgConnection, ClaimId, ClaimStatus};

use crate::support::{app, app_with, eventually, registry, Probe, TOKEN_A, TOKEN_B};

async fn ids(conn: &mut AsyncPgConnection, status: ClaimStatus) -> Vec<ClaimId> {
    use payouts_store::api_queries::{list_claims, ClaimFilter};
    let filter = ClaimFilter {
        status: Some(status),
        limit: 10_000,
        ..Default::default()
    };
    let mut ids: Vec<ClaimId> = list_claims(conn, &filter)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort();
    ids
}

/// Stores a transaction carrying `claims` on `key` and moves them to `submitted`.
pub async fn submit(
    conn: &mut AsyncPgConnection,
    hash: &str,
    key: &str,
    nonce: i64,
    claims: &[ClaimId],
) {
    let tx = NewTx {
        hash: hash.into(),
        signer_id: "treasury.devnet".into(),
        public_key: key.into(),
        nonce,
        block_hash: "block".into(),
        signed_bytes: vec![1, 2, 3],
        token_contract: TOKEN_A.into(),
        claim_ids: claims.iter().map(|c| c.0).collect(),
        amount: None,
        spend_day: None,
        gas_per_action: None,
        action_count: None,
    };
    insert_tx(conn, &tx).await.unwrap();
    update_claims(
        conn,
        claims,
        ClaimStatus::Pending,
        ClaimUpdate::Submit { tx_hash: hash },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn status_shows_counts_rates_keys_and_distributors() {
    let app = app_with(|c| c.status_cache_ms = 0, |b| b).await;
    // Empty database.
    let v = app.read("/status").await.json();
    assert_eq!(v["claims"]["total"], 0);
    for s in ["pending", "submitted", "confirmed", "failed"] {
        assert_eq!(v["claims"]["by_status"][s], 0, "{s}");
    }
    assert_eq!(v["throughput"]["transfers_per_second_1m"], 0.0);
    assert_eq!(v["throughput"]["series"].as_array().unwrap().len(), 120);
    assert!(v["chain"]["head_height"].is_null());
    assert_eq!(v["chain"]["source"], "unavailable");
    assert!(v["indexer"]["indexed_height"].is_null());
    assert_eq!(v["allowed_tokens"][0], TOKEN_A);

    app.insert_event_claims(10, TOKEN_A, "alice.devnet", "a")
        .await;
    app.insert_event_claims(2, TOKEN_B, "bob.devnet", "b").await;
    let mut conn = app.db.conn().await;
    register_keys(
        &mut conn,
        "treasury.devnet",
        &["ed25519:k1".into(), "ed25519:k2".into()],
    )
    .await
    .unwrap();
    lease_keys(&mut conn, "treasury.devnet", None, "dist-1", 1, 60_000)
        .await
        .unwrap();
    let pending = ids(&mut conn, ClaimStatus::Pending).await;
    submit(&mut conn, "tx1", "ed25519:k1", 1, &pending[..6]).await;
    submit(&mut conn, "tx2", "ed25519:k1", 2, &pending[6..8]).await;
    // Bounds the confirmations' age at the /status below (they are stamped after this instant).
    let before_confirm = Instant::now();
    update_claims(
        &mut conn,
        &pending[..6],
        ClaimStatus::Submitted,
        ClaimUpdate::Confirm,
    )
    .await
    .unwrap();
    update_claims(
        &mut conn,
        &pending[8..9],
        ClaimStatus::Pending,
        ClaimUpdate::Fail {
            error: "not registered",
        },
    )
    .await
    .unwrap();
    report_started(&mut conn, "dist-1").await.unwrap();
    report_heartbeat(&mut conn, "dist-1", Some("daily cap reached"))
        .await
        .unwrap();
    report_error(&mut conn, "dist-1", "rpc timeout")
        .await
        .unwrap();
    advance_cursor(&mut conn, "main", 42, None).await.unwrap();

    let a = app.read("/status").await;
    let max_age = before_confirm.elapsed();
    assert_eq!(a.status, StatusCode::OK);
    let v = a.json();
    let by = &v["claims"]["by_status"];
    assert_eq!(by["pending"], 3);
    assert_eq!(by["submitted"], 2);
    assert_eq!(by["confirmed"], 6);
    assert_eq!(by["failed"], 1);
    assert_eq!(v["claims"]["total"], 12);
    let tokens = v["claims"]["by_token"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0]["token"], TOKEN_A);
    assert_eq!(tokens[0]["total"], 10);
    assert_eq!(tokens[1]["by_status"]["pending"], 2);

    let t = &v["throughput"];
    assert_eq!(t["confirmed_1m"], 6);
    assert_eq!(t["confirmed_10m"], 6);
    assert!((t["transfers_per_second_1m"].as_f64().unwrap() - 0.1).abs() < 1e-9);
    let series: Vec<f64> = t["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert!(
        (series.iter().sum::<f64>() * 5.0 - 6.0).abs() < 1e-9,
        "{series:?}"
    );
    // The newest bucket is last. Buckets are 5 s of age, so the confirmations sit in the last one unless
    // this slow host took longer than that between confirming and answering: allow for the measured time.
    assert_eq!(t["bucket_secs"], 5);
    let bucket_secs = 5.0;
    let newest = ((max_age.as_secs_f64() / bucket_secs) as usize + 1).min(series.len());
    let recent: f64 = series[series.len() - newest..].iter().sum();
    assert!(
        (recent * bucket_secs - 6.0).abs() < 1e-9,
        "the 6 confirmations (at most {max_age:?} old) are in the newest {newest} bucket(s), at the end: {series:?}"
    );

    let kp = &v["key_pool"];
    assert_eq!(kp["total"], 2);
    assert_eq!(kp["leased"], 1);
    assert_eq!(kp["in_flight"], 2, "tx1 and tx2 are open (signed)");
    assert_eq!(kp["keys"][0]["public_key"], "ed25519:k1");
    assert_eq!(kp["keys"][0]["lease_owner"], "dist-1");
    assert_eq!(kp["keys"][0]["in_flight"], 2);

    let d = &v["distributors"][0];
    assert_eq!(d["owner"], "dist-1");
    assert_eq!(d["paused_reason"], "daily cap reached");
    assert_eq!(d["last_error"], "rpc timeout");
    assert_eq!(d["alive"], true);

    assert_eq!(v["indexer"]["indexed_height"], 42);
    assert_eq!(v["indexer"]["in_process"], false);
}

#[tokio::test]
async fn status_is_cached_for_the_configured_period() {
    let app = app_with(|c| c.status_cache_ms = 60_000, |b| b).await;
    let v = app.read("/status").await.json();
    assert_eq!(v["claims"]["total"], 0);
    app.insert_event_claims(1, TOKEN_A, "alice.devnet", "c")
        .await;
    let v2 = app.read("/status").await.json();
    assert_eq!(
        v2["generated_at"], v["generated_at"],
        "served from the cache"
    );
    assert_eq!(v2["claims"]["total"], 0);
}

#[tokio::test]
async fn in_process_indexer_and_distributor_feed_status_ready_and_metrics() {
    let im = Arc::new(IndexerMetrics::default());
    let dm = Arc::new(DistributorMetrics::default());
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    im.record(&CommitStats {
        last_height: 100,
        last_timestamp_nanos: now_ns - 2_000_000_000,
        blocks: 100,
        events: 7,
        inserted: 5,
        ..Default::default()
    });
    im.saw_height(103);
    dm.batches.store(4, Ordering::Relaxed);
    dm.transfers.store(40, Ordering::Relaxed);
    dm.broadcast_latency.observe(Duration::from_millis(30));
    let app = app_with(
        |c| {
            c.status_cache_ms = 0;
            c.ready_max_lag_blocks = 5;
        },
        |b| {
            b.indexer_probe(Arc::new(Probe(im.clone())))
                .metrics_registry(registry(vec![Box::new(im.clone()), Box::new(dm.clone())]))
        },
    )
    .await;

    // No cursor yet: not ready.
    let a = app.get("/ready").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.code(), "not_ready");
    assert!(a.message().contains("not committed"), "{}", a.text);

    let mut conn = app.db.conn().await;
    advance_cursor(&mut conn, "main", 100, None).await.unwrap();
    let a = app.get("/ready").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["lag_blocks"], 3);

    let v = app.read("/status").await.json();
    assert_eq!(v["chain"]["source"], "indexer");
    assert_eq!(v["chain"]["head_height"], 103);
    assert_eq!(v["indexer"]["lag_blocks"], 3);
    assert_eq!(v["indexer"]["in_process"], true);
    let lag_s = v["indexer"]["lag_seconds"].as_f64().unwrap();
    assert!((1.5..60.0).contains(&lag_s), "{lag_s}");

    // Falling behind: not ready.
    im.saw_height(200);
    let a = app.get("/ready").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(a.message().contains("100 blocks behind"), "{}", a.text);

    let m = app.read("/metrics").await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(m.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text; version=1.0.0"));
    assert!(m.text.ends_with("# EOF\n"), "{}", m.text);
    for needle in [
        "payouts_indexer_last_height 100\n",
        "payouts_indexer_head_seen 200\n",
        "payouts_indexer_claims_inserted_total 5\n",
        "payouts_distributor_batches_total 4\n",
        "payouts_distributor_transfers_total 40\n",
        "payouts_distributor_broadcast_latency_seconds_bucket{le=\"0.05\"} 1\n",
        "payouts_distributor_broadcast_latency_seconds_count 1\n",
        "payouts_indexer_cursor_height{stream=\"main\"} 100\n",
        "payouts_database_up 1\n",
        "# TYPE payouts_http_requests counter\n",
        "payouts_http_requests_total{method=\"GET\",route=\"/ready\",status=\"503\"} 2\n",
        "payouts_http_request_duration_seconds_bucket{le=\"+Inf\",method=\"GET\",route=\"/status\"} 1\n",
    ] {
        assert!(m.text.contains(needle), "missing {needle:?} in:\n{}", m.text);
    }
}

#[tokio::test]
async fn metrics_count_claims_and_requests_by_route_template() {
    let app = app().await;
    app.insert_event_claims(3, TOKEN_A, "alice.devnet", "m")
        .await;
    app.read("/claims/1").await;
    app.read("/claims/2").await;
    app.get("/no/such/route").await;
    let m = app.read("/metrics").await.text;
    assert!(m.contains("payouts_claims{status=\"pending\"} 3\n"), "{m}");
    assert!(m.contains("payouts_claims{status=\"failed\"} 0\n"), "{m}");
    assert!(
        m.contains(
            "payouts_http_requests_total{method=\"GET\",route=\"/claims/{id}\",status=\"200\"} 2\n"
        ),
        "{m}"
    );
    assert!(
        m.contains(
            "payouts_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1\n"
        ),
        "{m}"
    );
    assert!(
        !m.contains("payouts_indexer_last_height"),
        "no in-process indexer here"
    );
    assert!(app.state.http_metrics().requests("/claims/{id}", 200) == 2);
}

#[tokio::test]
async fn chain_head_comes_from_the_rpc_and_an_unreachable_node_shows_as_unknown() {
    // Unreachable: answers quickly with head null and a reason.
    let app = app_with(
        |c| {
            c.status_cache_ms = 0;
            c.rpc_timeout_ms = 500;
            c.ready_max_lag_blocks = 10;
        },
        |b| b.rpc_url("http://127.0.0.1:1"),
    )
    .await;
    let started = Instant::now();
    let v = app.read("/status").await.json();
    // Not held up by the dead node: well under the 10 s request timeout that would otherwise cut the
    // request (the RPC call is given 500 ms; the rest is a few queries on a possibly loaded host).
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "/status took {took:?}");
    assert!(v["chain"]["head_height"].is_null());
    assert_eq!(v["chain"]["source"], "unavailable");
    assert!(v["chain"]["error"].as_str().unwrap().contains("RPC"), "{v}");
    let mut conn = app.db.conn().await;
    advance_cursor(&mut conn, "main", 5, None).await.unwrap();
    let a = app.get("/ready").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(a.message().contains("chain head unknown"), "{}", a.text);
    drop(app);

    // A real node (the devnet).
    let (devnet, _keys) = Devnet::start_for_tests(|_| {}).await.unwrap();
    // The RPC answers from one of the devnet's nodes, which may lag the producer by up to
    // `max_node_lag_blocks` (2) blocks — and heights may be skipped, so a lagging node can be more
    // than two heights behind: wait for the head the API reports to reach 5 rather than assuming it.
    assert!(devnet.wait_for_height(7, Duration::from_secs(30)).await);
    let app = app_with(
        |c| {
            c.status_cache_ms = 0;
            c.ready_max_lag_blocks = 1_000_000;
        },
        |b| b.rpc_url(devnet.rpc_url()),
    )
    .await;
    let mut conn = app.db.conn().await;
    advance_cursor(&mut conn, "main", 2, None).await.unwrap();
    let v = eventually(
        Duration::from_secs(20),
        "a chain head of 5 or more from the devnet",
        || async {
            let v = app.read("/status").await.json();
            v["chain"]["head_height"]
                .as_u64()
                .filter(|h| *h >= 5)
                .map(|_| v)
        },
    )
    .await;
    let head = v["chain"]["head_height"].as_u64().unwrap();
    assert!(head >= 5, "{v}");
    assert_eq!(v["chain"]["source"], "rpc");
    assert!(v["chain"]["head_time"].is_string());
    assert_eq!(v["indexer"]["lag_blocks"].as_u64().unwrap(), head - 2);
    assert!(v["indexer"]["lag_seconds"].as_f64().unwrap() >= 0.0, "{v}");
    let a = app.get("/ready").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    devnet.shutdown().await;
}
