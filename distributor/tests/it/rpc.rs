//! The RPC endpoint pool against the devnet through endpoints that fail the ways paid providers do: one
//! refuses connections, one answers 429 with `Retry-After` to every other request, one is slow. Every claim
//! must still be paid once, and the pool's counters must show where the requests went.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use payouts_distributor::RpcEndpointConfig;
use payouts_store::ClaimStatus;

use crate::world::{registered_user, World};

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    /// Every n-th request (n > 0) is answered 429 with `Retry-After: 1` instead of being forwarded.
    throttle_every: u64,
    /// Added before forwarding.
    delay: Duration,
    seen: Arc<AtomicU64>,
    /// Headers of the last request (to check the header key was sent).
    last_headers: Arc<std::sync::Mutex<HeaderMap>>,
}

async fn forward(State(p): State<Proxy>, headers: HeaderMap, body: Bytes) -> Response {
    let n = p.seen.fetch_add(1, Ordering::Relaxed) + 1;
    *p.last_headers.lock().unwrap() = headers;
    if p.throttle_every > 0 && n % p.throttle_every == 0 {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "rate limited",
        )
            .into_response();
    }
    if !p.delay.is_zero() {
        tokio::time::sleep(p.delay).await;
    }
    match p
        .http
        .post(&p.upstream)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(r) => {
            let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
            let bytes = r.bytes().await.unwrap_or_default();
            (status, [("content-type", "application/json")], bytes).into_response()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// Starts a proxy in front of `upstream`; returns its URL and the proxy's state.
async fn start_proxy(upstream: String, throttle_every: u64, delay: Duration) -> (String, Proxy) {
    let proxy = Proxy {
        upstream,
        http: reqwest::Client::new(),
        throttle_every,
        delay,
        seen: Arc::new(AtomicU64::new(0)),
        last_headers: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/", axum::routing::post(forward))
        .with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/"), proxy)
}

/// A URL on which nothing listens.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_a_throttling_and_a_slow_endpoint_still_pay_every_claim_once() {
    let world = World::start(|_| {}).await;
    let (throttled_url, throttled) = start_proxy(world.devnet.rpc_url(), 2, Duration::ZERO).await;
    let (slow_url, slow) = start_proxy(world.devnet.rpc_url(), 0, Duration::from_millis(300)).await;
    std::env::set_var("RPC_TEST_PROVIDER_KEY", "provider-key-value");
    let endpoints = vec![
        RpcEndpointConfig {
            name: Some("dead".into()),
            ..RpcEndpointConfig::new(dead_url())
        },
        RpcEndpointConfig {
            name: Some("throttled".into()),
            headers_env: [("x-api-key".to_string(), "RPC_TEST_PROVIDER_KEY".to_string())]
                .into_iter()
                .collect(),
            ..RpcEndpointConfig::new(throttled_url)
        },
        RpcEndpointConfig {
            name: Some("slow".into()),
            ..RpcEndpointConfig::new(slow_url)
        },
    ];
    let items: Vec<(String, u128)> = (0..120)
        .map(|i| (registered_user(i), 1_000 + i as u128))
        .collect();
    let ids = world.claims("pool", &items).await;
    let mut cfg = world.config(0..2);
    cfg.max_transfers_per_tx = 10;
    let d = world.spawn_with_endpoints(cfg, &endpoints).await;
    let counts = world.wait_settled(Duration::from_secs(120)).await;
    assert_eq!(
        counts.get(&ClaimStatus::Confirmed),
        Some(&120),
        "{counts:?}"
    );
    world.assert_exactly_once(&ids).await;

    let eps = d.metrics.snapshot().rpc_endpoints;
    let by = |name: &str| eps.iter().find(|e| e.name == name).unwrap().clone();
    let (dead, thr, sl) = (by("dead"), by("throttled"), by("slow"));
    // The dead one was tried, failed every time, and its requests moved on.
    assert!(
        dead.requests > 0 && dead.errors == dead.requests,
        "{dead:?}"
    );
    assert!(dead.failovers > 0, "{dead:?}");
    assert!(
        dead.last_error
            .as_deref()
            .is_some_and(|e| e.contains("transport")),
        "{dead:?}"
    );
    // The throttling one answered 429s, which were failed over (and rested for Retry-After).
    assert!(thr.throttled > 0 && thr.failovers > 0, "{thr:?}");
    assert!(thr.requests > thr.errors, "it also answered: {thr:?}");
    // The slow one carried the rest.
    assert!(sl.requests > 0 && sl.errors < sl.requests, "{sl:?}");
    // Broadcasts went to every endpoint that was healthy at the time.
    assert!(thr.broadcasts > 0 && sl.broadcasts > 0, "{eps:?}");
    // The header key was sent, and only to its own endpoint.
    let h = throttled.last_headers.lock().unwrap().clone();
    assert_eq!(
        h.get("x-api-key").map(|v| v.to_str().unwrap()),
        Some("provider-key-value")
    );
    assert!(slow.last_headers.lock().unwrap().get("x-api-key").is_none());
    assert!(throttled.seen.load(Ordering::Relaxed) > 0 && slow.seen.load(Ordering::Relaxed) > 0);
    d.shutdown().await;
    world.stop().await;
}
