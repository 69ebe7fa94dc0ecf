//! `POST /admin/replay`: auth, validation, and a real replay of devnet blocks: the API queues a job, an
//! indexer (the real one, in this process) runs it.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use payouts_devnet::Devnet;
use payouts_indexer::{Indexer, IndexerConfig, IndexerMetrics};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{app, eventually, Answer, App, OPS, SENDER};

async fn replay(app: &App, token: Option<&str>, body: &str) -> Answer {
    let mut req = Request::post("/admin/replay").header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    app.call(req.body(Body::from(body.to_string())).unwrap())
        .await
}

#[tokio::test]
async fn replay_needs_the_admin_scope_and_a_valid_range() {
    let app = app().await;
    let body = json!({"from": 1, "to": 2}).to_string();
    assert_eq!(
        replay(&app, None, &body).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        replay(&app, Some(SENDER), &body).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get_auth("/admin/replay", SENDER).await.status,
        StatusCode::FORBIDDEN
    );
    let a = app.get_auth("/admin/replay", OPS).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    let a = replay(&app, Some(OPS), &json!({"from": 5, "to": 2}).to_string()).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.code(), "invalid_range");
    let a = replay(
        &app,
        Some(OPS),
        &json!({"from": 1, "to": 1_000_000}).to_string(),
    )
    .await;
    assert_eq!(a.code(), "invalid_range");
    assert!(a.message().contains("max_replay_blocks"));
    for bad in [
        "{}",
        r#"{"from":-1,"to":2}"#,
        r#"{"from":"1","to":2}"#,
        "nope",
    ] {
        let a = replay(&app, Some(OPS), bad).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(a.code(), "invalid_json");
    }
    // No indexer runs here: the job waits in the queue, and a second one is refused meanwhile.
    let a = replay(&app, Some(OPS), &body).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    assert_eq!(a.json()["state"], "queued");
    assert_eq!(a.json()["requested_by"], "ops");
    let a = replay(&app, Some(OPS), &body).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert!(a.message().contains("still queued"), "{}", a.text);
    assert_eq!(
        app.get_auth("/admin/replay", OPS).await.json()["state"],
        "queued"
    );
}

/// Starts the real indexer on `app`'s database, following `devnet` from a head far ahead of the replayed
/// range, so only its replay-job runner touches the old blocks.
fn start_indexer(
    app: &App,
    cfg: IndexerConfig,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let indexer = Indexer::new(
        app.state.pool().clone(),
        cfg,
        Arc::new(IndexerMetrics::default()),
    )
    .unwrap();
    let stop = CancellationToken::new();
    let token = stop.clone();
    let task = tokio::spawn(async move {
        indexer.run(token).await.unwrap();
    });
    (stop, task)
}

#[tokio::test]
async fn replay_jobs_run_in_the_indexer_one_at_a_time() {
    let (devnet, _keys) = Devnet::start_for_tests(|_| {}).await.unwrap();
    assert!(devnet.wait_for_height(6, Duration::from_secs(30)).await);
    let app = app().await;
    let cfg = IndexerConfig::fastnear(devnet.rpc_url());
    let (stop, indexer) = start_indexer(&app, cfg.clone());

    let a = replay(&app, Some(OPS), &json!({"from": 1, "to": 5}).to_string()).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    assert_eq!(a.json()["state"], "queued");
    let done = eventually(Duration::from_secs(60), "the replay to finish", || async {
        let v = app.get_auth("/admin/replay", OPS).await.json();
        (v["state"] == "done" || v["state"] == "failed").then_some(v)
    })
    .await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["blocks"], 5);
    assert_eq!(done["new_claims"], 0);
    assert!(
        done["started_at"].is_string() && done["finished_at"].is_string(),
        "{done}"
    );

    // A range far ahead of the chain waits for blocks: a second request meanwhile is refused.
    let head = devnet.head_height();
    let far = json!({"from": head + 5_000, "to": head + 5_010}).to_string();
    let a = replay(&app, Some(OPS), &far).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    eventually(
        Duration::from_secs(30),
        "the indexer to take the job",
        || async {
            let v = app.get_auth("/admin/replay", OPS).await.json();
            (v["state"] == "running").then_some(())
        },
    )
    .await;
    let a = replay(&app, Some(OPS), &far).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert_eq!(a.code(), "replay_running");
    let status = app.read("/status").await.json();
    assert_eq!(status["replay"]["state"], "running");

    // The indexer stopping hands the job back to the queue; the next indexer takes it again.
    stop.cancel();
    indexer.await.unwrap();
    let v = app.get_auth("/admin/replay", OPS).await.json();
    assert_eq!(v["state"], "queued", "{v}");
    let (stop, indexer) = start_indexer(&app, cfg);
    eventually(
        Duration::from_secs(30),
        "the next indexer to take the job",
        || async {
            let v = app.get_auth("/admin/replay", OPS).await.json();
            (v["state"] == "running").then_some(())
        },
    )
    .await;
    stop.cancel();
    indexer.await.unwrap();
    devnet.shutdown().await;
}
