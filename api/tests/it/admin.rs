//! `POST /admin/replay`: auth, validation, and a real replay of devnet blocks through the indexer's path.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use payouts_devnet::Devnet;
use payouts_indexer::IndexerConfig;
use serde_json::json;

use crate::support::{app, app_with, eventually, Answer, App, OPS, SENDER};

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
    // No [indexer] in this process.
    let a = replay(&app, Some(OPS), &body).await;
    assert_eq!(a.status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(a.code(), "replay_unavailable");
}

#[tokio::test]
async fn replay_runs_in_the_background_one_at_a_time() {
    let (devnet, _keys) = Devnet::start_for_tests(|_| {}).await.unwrap();
    assert!(devnet.wait_for_height(6, Duration::from_secs(30)).await);
    let indexer = IndexerConfig::fastnear(devnet.rpc_url());
    let app = app_with(|_| {}, |b| b.indexer_config(indexer)).await;

    let a = replay(&app, Some(OPS), &json!({"from": 1, "to": 5}).to_string()).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    assert_eq!(a.json()["state"], "running");
    let done = eventually(Duration::from_secs(60), "the replay to finish", || async {
        let v = app.get_auth("/admin/replay", OPS).await.json();
        (v["state"] != "running").then_some(v)
    })
    .await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["blocks"], 5);
    assert_eq!(done["new_claims"], 0);

    // A range far ahead of the chain waits for blocks: a second request meanwhile is refused.
    let head = devnet.head_height();
    let far = json!({"from": head + 5_000, "to": head + 5_010}).to_string();
    let a = replay(&app, Some(OPS), &far).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    let a = replay(&app, Some(OPS), &far).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert_eq!(a.code(), "replay_running");
    let status = app.read("/status").await.json();
    assert_eq!(status["replay"]["state"], "running");

    // Shutdown stops it.
    app.state.shutdown_background();
    let v = eventually(Duration::from_secs(10), "the replay to stop", || async {
        let v = app.get_auth("/admin/replay", OPS).await.json();
        (v["state"] != "running").then_some(v)
    })
    .await;
    assert_eq!(v["state"], "failed");
    assert!(
        v["error"].as_str().unwrap().contains("shutting down"),
        "{v}"
    );
    devnet.shutdown().await;
}
