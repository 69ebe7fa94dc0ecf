//! Shared helpers: an app on a fresh database with three tokens, request builders, row counts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use payouts_api::{ApiConfig, AppState, AppStateBuilder, Scope, TokenConfig};
use payouts_store::claims::{count_by_status, insert_claims, EventKey, NewClaim};
use payouts_store::testdb::TestDb;
use payouts_store::{PgPool, Yocto};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Scopes read + send + admin.
pub const OPS: &str = "ops-token-0123456789abcdef";
/// Scope send only.
pub const SENDER: &str = "sender-token-0123456789abcdef";
/// Scope read only.
pub const READER: &str = "reader-token-0123456789abcdef";
/// Scopes send + approve (uploads campaigns, approves others').
pub const APPROVER: &str = "approver-token-0123456789abcdef";
/// Scope approve only.
pub const TREASURER: &str = "treasurer-token-0123456789abcdef";
/// Scope metrics only.
pub const SCRAPER: &str = "scraper-token-0123456789abcdef";

pub const TOKEN_A: &str = "token.devnet";
pub const TOKEN_B: &str = "usdc.devnet";
/// `api.max_amount` in these tests.
pub const MAX_AMOUNT: u128 = 1_000_000_000_000_000_000_000_000_000;

pub struct App {
    pub db: TestDb,
    pub pool: PgPool,
    pub state: AppState,
    pub router: Router,
    _secrets: tempfile::TempDir,
}

fn token_file(dir: &tempfile::TempDir, name: &str, secret: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    path
}

/// A config with the three test tokens (from files) and two allowed tokens.
pub fn config(secrets: &tempfile::TempDir) -> ApiConfig {
    let tok = |name: &str, secret: &str, scopes: Vec<Scope>| TokenConfig {
        name: name.into(),
        scopes,
        token_env: None,
        token_file: Some(token_file(secrets, name, secret)),
    };
    ApiConfig {
        tokens: vec![
            tok("ops", OPS, vec![Scope::Read, Scope::Send, Scope::Admin]),
            tok("sender", SENDER, vec![Scope::Send]),
            tok("reader", READER, vec![Scope::Read]),
            tok("scraper", SCRAPER, vec![Scope::Metrics]),
            tok("approver", APPROVER, vec![Scope::Send, Scope::Approve]),
            tok("treasurer", TREASURER, vec![Scope::Approve]),
        ],
        allowed_tokens: vec![TOKEN_A.into(), TOKEN_B.into()],
        max_amount: Yocto(MAX_AMOUNT),
        ready_max_lag_blocks: 0,
        ..ApiConfig::default()
    }
}

/// An app on a fresh database; `tune` adjusts the config and the builder.
pub async fn app_with(
    tune: impl FnOnce(&mut ApiConfig),
    build: impl FnOnce(AppStateBuilder) -> AppStateBuilder,
) -> App {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let secrets = tempfile::tempdir().unwrap();
    let mut cfg = config(&secrets);
    tune(&mut cfg);
    let state = build(AppState::builder(pool.clone(), cfg)).build().unwrap();
    let router = payouts_api::router(state.clone());
    App {
        db,
        pool,
        state,
        router,
        _secrets: secrets,
    }
}

pub async fn app() -> App {
    app_with(|_| {}, |b| b).await
}

/// An answer, with the body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The error code of a JSON error envelope (asserts the envelope's shape).
    pub fn code(&self) -> String {
        let v = self.json();
        let err = &v["error"];
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        err["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no code: {v}"))
            .to_string()
    }

    pub fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl App {
    pub async fn call(&self, req: Request<Body>) -> Answer {
        call(&self.router, req).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    /// `GET` with the read-only token (reads need a token by default).
    pub async fn read(&self, path: &str) -> Answer {
        self.get_auth(path, READER).await
    }

    pub async fn get_auth(&self, path: &str, token: &str) -> Answer {
        self.call(
            Request::get(path)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// `POST /send-ft` with a bearer token, an Idempotency-Key and a JSON body.
    pub async fn send(&self, token: Option<&str>, key: Option<&str>, body: &str) -> Answer {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/send-ft")
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        self.call(req.body(Body::from(body.to_string())).unwrap())
            .await
    }

    pub async fn claim_rows(&self) -> i64 {
        let mut conn = self.db.conn().await;
        count_by_status(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|(_, n)| n)
            .sum()
    }

    /// Inserts `n` pending event claims of `token` to `receiver`; returns nothing (ids are sequential).
    pub async fn insert_event_claims(&self, n: u32, token: &str, receiver: &str, tag: &str) {
        let rows: Vec<NewClaim> = (0..n)
            .map(|i| {
                NewClaim::event(
                    EventKey {
                        rule: "claims".into(),
                        receipt_id: format!("{tag}-{i}"),
                        log_index: 0,
                        event_index: 0,
                        block_height: 10 + u64::from(i),
                    },
                    token,
                    receiver,
                    Yocto(1_000 + u128::from(i)),
                    None,
                )
            })
            .collect();
        let mut conn = self.db.conn().await;
        assert_eq!(insert_claims(&mut conn, &rows).await.unwrap(), n as usize);
    }
}

pub async fn call(router: &Router, req: Request<Body>) -> Answer {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// A real server on 127.0.0.1:0.
pub struct Server {
    pub addr: SocketAddr,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), payouts_api::Error>>,
}

impl Server {
    pub async fn start(state: AppState) -> Server {
        let listener = payouts_api::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(payouts_api::serve(listener, state, stop.clone()));
        Server { addr, stop, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    payouts_store::testdb::wait_until(timeout, what, async || check().await.ok_or("not yet")).await
}

/// What `payouts run` hands the API of an in-process indexer (src/roles.rs builds the same).
pub struct Probe(pub std::sync::Arc<payouts_indexer::IndexerMetrics>);

impl payouts_api::IndexerProbe for Probe {
    fn position(&self) -> payouts_api::IndexerPosition {
        let s = self.0.snapshot();
        payouts_api::IndexerPosition {
            last_height: s.last_height,
            head_seen: s.head_seen,
            last_block_timestamp_nanos: s.last_block_timestamp_nanos,
            source_errors: s.source_errors,
        }
    }
}

/// A metrics registry holding `collectors`, as the binary builds one for the parts it runs.
pub fn registry(
    collectors: Vec<Box<dyn payouts_near::prom::Collector>>,
) -> std::sync::Arc<payouts_near::prom::Registry> {
    let mut r = payouts_near::prom::Registry::default();
    for c in collectors {
        r.register_collector(c);
    }
    std::sync::Arc::new(r)
}
