//! Over a real socket: the server serves, enforces the body limit before reading a huge body, and stops
//! gracefully when its token is cancelled.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::support::{app, Server, READER, SENDER};

#[tokio::test]
async fn serves_over_http_and_shuts_down_gracefully() {
    let app = app().await;
    let server = Server::start(app.state.clone()).await;
    let client = reqwest::Client::new();

    let r = client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");

    let r = client
        .post(server.url("/send-ft"))
        .bearer_auth(SENDER)
        .header("idempotency-key", "http-1")
        .json(&json!({"receiver_id": "alice.devnet", "amount": "7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let claim: Value = r.json().await.unwrap();
    let r = client
        .get(server.url(&format!("/claims/{}", claim["id"])))
        .bearer_auth(READER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // A body far over the limit: 413 JSON, no row.
    let big = vec![b'x'; 1024 * 1024];
    let r = client
        .post(server.url("/send-ft"))
        .bearer_auth(SENDER)
        .header("idempotency-key", "http-big")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "payload_too_large");
    assert_eq!(app.claim_rows().await, 1);

    server.stop.cancel();
    let done = tokio::time::timeout(Duration::from_secs(10), server.task)
        .await
        .expect("serve returns after the shutdown token fires")
        .unwrap();
    assert!(done.is_ok(), "{done:?}");
    assert!(client
        .get(format!("http://{}/health", server.addr))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn binding_a_taken_address_names_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = payouts_api::bind(addr).await.unwrap_err();
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn keep_alive_connections_serve_request_after_request() {
    let app = app().await;
    let server = Server::start(app.state.clone()).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    for i in 0..40 {
        let r = client.get(server.url("/health")).send().await;
        assert!(r.is_ok(), "request {i}: {r:?}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}
