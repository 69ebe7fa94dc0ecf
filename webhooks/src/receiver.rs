//! A small webhook receiver on 127.0.0.1: verifies each request's signature and timestamp, records it, and
//! answers as told (200, an error status, or never). Used by the tests and by `payouts dev` to show the
//! notifications; a real receiver does the same checks (see the README's example).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::sign::{verify, EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 OK.
    Accept,
    /// This status (e.g. 500).
    Fail(u16),
    /// Never answers (until the client gives up).
    Hang,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// `X-Payouts-Event-Id`.
    pub event_id: String,
    /// The parsed body.
    pub body: serde_json::Value,
    /// Whether signature and timestamp verified with the receiver's secret.
    pub verified: bool,
    /// The status it was answered with (`None`: it hung).
    pub answered: Option<u16>,
}

impl Received {
    /// The event type and the claim id of the body (`""` / 0 when absent).
    pub fn kind_and_claim(&self) -> (String, i64) {
        (
            self.body["type"].as_str().unwrap_or_default().to_string(),
            self.body["data"]["claim"]["id"]
                .as_i64()
                .unwrap_or_default(),
        )
    }
}

#[derive(Debug)]
struct Shared {
    secret: Vec<u8>,
    mode: Mutex<Mode>,
    received: Mutex<Vec<Received>>,
    changed: tokio::sync::Notify,
}

/// A running receiver; stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Receiver {
    /// Listens on `addr` (port 0: any free port) with `secret`.
    pub async fn start(addr: SocketAddr, secret: &[u8], mode: Mode) -> std::io::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            secret: secret.to_vec(),
            mode: Mutex::new(mode),
            received: Mutex::new(Vec::new()),
            changed: tokio::sync::Notify::new(),
        });
        let stop = CancellationToken::new();
        let app = Router::new()
            .route("/{*path}", post(handle))
            .route("/", post(handle))
            .with_state(shared.clone());
        let until = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await;
        });
        Ok(Receiver { addr, shared, stop })
    }

    /// `http://127.0.0.1:port/hook`
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Changes how it answers from now on.
    pub fn set_mode(&self, mode: Mode) {
        *self
            .shared
            .mode
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = mode;
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The requests answered with 2xx, in arrival order.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.answered.is_some_and(|s| (200..300).contains(&s)))
            .collect()
    }

    /// Waits until every `(event type, claim id)` of `expected` has arrived, then checks that they are
    /// exactly what arrived and that delivery was at-least-once, not more: a repeat (a request the worker
    /// timed out on after this receiver had answered) carries the same event id, and no two events share
    /// one. Returns everything received, repeats included; `Err` says what is wrong.
    pub async fn wait_for_events(
        &self,
        expected: &BTreeSet<(String, i64)>,
        within: Duration,
    ) -> Result<Vec<Received>, String> {
        let complete = self
            .wait_until(within, |got| {
                expected.is_subset(&got.iter().map(Received::kind_and_claim).collect())
            })
            .await;
        let got = self.received();
        let seen: BTreeSet<(String, i64)> = got.iter().map(Received::kind_and_claim).collect();
        if !complete {
            let missing: Vec<_> = expected.difference(&seen).collect();
            return Err(format!("missing events after {within:?}: {missing:?}"));
        }
        if &seen != expected {
            let extra: Vec<_> = seen.difference(expected).collect();
            return Err(format!("unexpected events: {extra:?}"));
        }
        let mut ids_of: BTreeMap<(String, i64), BTreeSet<&str>> = BTreeMap::new();
        for r in &got {
            if r.body["id"] != r.event_id.as_str() {
                return Err(format!(
                    "body id {} != header id {}",
                    r.body["id"], r.event_id
                ));
            }
            ids_of
                .entry(r.kind_and_claim())
                .or_default()
                .insert(r.event_id.as_str());
        }
        if let Some((event, ids)) = ids_of.iter().find(|(_, ids)| ids.len() > 1) {
            return Err(format!("{event:?} arrived under several ids: {ids:?}"));
        }
        let distinct: BTreeSet<&str> = got.iter().map(|r| r.event_id.as_str()).collect();
        if distinct.len() != expected.len() {
            return Err(format!(
                "{} event ids for {} events",
                distinct.len(),
                expected.len()
            ));
        }
        Ok(got)
    }

    /// Waits until `done(received)` holds; `false` at the deadline.
    pub async fn wait_until(&self, within: Duration, done: impl Fn(&[Received]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.shared.changed.notified();
            if done(&self.received()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return done(&self.received());
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let now = chrono::Utc::now().timestamp();
    let verified = verify(
        &shared.secret,
        &header(TIMESTAMP_HEADER),
        &body,
        &header(SIGNATURE_HEADER),
        now,
        300,
    )
    .is_ok();
    let mode = *shared.mode.lock().unwrap_or_else(PoisonError::into_inner);
    let answered = match mode {
        Mode::Accept if verified => Some(200),
        Mode::Accept => Some(401),
        Mode::Fail(code) => Some(code),
        Mode::Hang => None,
    };
    let record = Received {
        event_id: header(EVENT_ID_HEADER),
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        verified,
        answered,
    };
    shared
        .received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(record);
    shared.changed.notify_waiters();
    match answered {
        Some(code) => StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        None => {
            std::future::pending::<()>().await;
            StatusCode::REQUEST_TIMEOUT
        }
    }
}
