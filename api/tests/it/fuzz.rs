//! Property run: at least 10,000 malformed (and some well-formed) requests — random methods, paths, query
//! strings, headers, tokens and bodies, including JSON that is almost a valid `POST /send-ft` — go through
//! the router. None may answer 5xx or panic (a panic would surface as a caught 500), and every error answer
//! must be the JSON envelope.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request};
use payouts_indexer::IndexerMetrics;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use crate::support::{app_with, call, Probe, OPS, READER, SENDER};

/// Cases generated; a few may not be expressible as a request (then nothing is sent).
const CASES: u32 = 10_500;
/// Requests that must actually go through the router.
const MIN_SENT: u64 = 10_000;

#[derive(Debug, Clone)]
struct Fuzz {
    method: Method,
    path: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
}

fn pct(bytes: &[u8]) -> String {
    let mut s = String::new();
    for b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
            s.push(*b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        3 => Just(Method::GET),
        4 => Just(Method::POST),
        1 => Just(Method::PUT),
        1 => Just(Method::DELETE),
        1 => Just(Method::PATCH),
        1 => Just(Method::HEAD),
        1 => Just(Method::OPTIONS),
        1 => Just(Method::from_bytes(b"BREW").unwrap()),
    ]
}

const ROUTES: &[&str] = &[
    "/",
    "/health",
    "/ready",
    "/status",
    "/metrics",
    "/openapi.json",
    "/send-ft",
    "/claims",
    "/claims/1",
    "/admin/replay",
    "/admin/webhooks/1/redeliver",
    "/campaigns",
    "/campaigns/1",
    "/campaigns/1/failures.csv",
    "/campaigns/1/retry-failed",
    "/admin/campaigns/1/approve",
    "/admin/campaigns/1/reject",
    "/assets/app.js",
    "/assets/app.css",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9._-]{0,70}",
        "[ -~]{0,40}",
        any::<String>(),
        "[0-9]{0,45}",
        Just(String::new()),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("status".to_string()),
        Just("receiver".to_string()),
        Just("token".to_string()),
        Just("cursor".to_string()),
        Just("limit".to_string()),
        Just("name".to_string()),
        Just("dry_run".to_string()),
        Just("skip_invalid".to_string()),
        Just("before".to_string()),
        "[a-z]{1,8}",
    ];
    prop::collection::vec((key, text()), 0..5).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", pct(v.as_bytes())))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(ROUTES).prop_map(str::to_string),
        2 => (prop::sample::select(ROUTES), query()).prop_map(|(r, q)| format!("{r}?{q}")),
        2 => text().prop_map(|t| format!("/claims/{}", pct(t.as_bytes()))),
        1 => prop::collection::vec(any::<u8>(), 0..60).prop_map(|b| format!("/{}", pct(&b))),
        1 => (prop::sample::select(ROUTES), "[a-z/]{1,12}").prop_map(|(r, s)| format!("{r}/{s}")),
    ]
}

fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{0,60}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..200),
        "[a-f0-9-]{36}".prop_map(String::into_bytes),
    ]
    .prop_map(|b| {
        // Only bytes a header value can hold.
        b.into_iter()
            .filter(|c| *c == b'\t' || (*c >= 0x20 && *c != 0x7f))
            .collect()
    })
}

fn auth() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        2 => prop::sample::select(vec![OPS, SENDER, READER])
            .prop_map(|t| Some(format!("Bearer {t}").into_bytes())),
        1 => header_bytes().prop_map(Some),
        1 => header_bytes().prop_map(|b| Some([b"Bearer ".as_slice(), &b].concat())),
    ]
}

fn content_type() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        3 => Just(Some(b"application/json".to_vec())),
        1 => Just(Some(b"application/json; charset=utf-8".to_vec())),
        1 => Just(Some(b"text/plain".to_vec())),
        1 => header_bytes().prop_map(Some),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Almost a valid send: each field sometimes valid, sometimes not, sometimes missing or mistyped.
fn send_body() -> impl Strategy<Value = Vec<u8>> {
    let receiver = prop_oneof![
        Just(json!("alice.devnet")),
        text().prop_map(Value::String),
        json_value(),
    ];
    let amount = prop_oneof![
        "[1-9][0-9]{0,20}".prop_map(Value::String),
        Just(json!("0")),
        Just(json!("-1")),
        Just(json!("1.5")),
        Just(json!("1".repeat(40))),
        text().prop_map(Value::String),
        json_value(),
    ];
    let token = prop_oneof![
        Just(None),
        Just(Some(json!("token.devnet"))),
        json_value().prop_map(Some),
    ];
    let memo = prop_oneof![
        Just(None),
        any::<String>().prop_map(|s| Some(json!(s))),
        json_value().prop_map(Some)
    ];
    let extra = prop_oneof![4 => Just(None), 1 => json_value().prop_map(Some)];
    (receiver, amount, token, memo, extra, any::<bool>()).prop_map(|(r, a, t, m, x, drop_one)| {
        let mut o = serde_json::Map::new();
        if !drop_one {
            o.insert("receiver_id".into(), r);
        }
        o.insert("amount".into(), a);
        if let Some(t) = t {
            o.insert("token".into(), t);
        }
        if let Some(m) = m {
            o.insert("memo".into(), m);
        }
        if let Some(x) = x {
            o.insert("extra".into(), x);
        }
        Value::Object(o).to_string().into_bytes()
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => Just(Vec::new()),
        4 => send_body(),
        2 => json_value().prop_map(|v| v.to_string().into_bytes()),
        2 => prop::collection::vec(any::<u8>(), 0..512),
        1 => (0u64..30, 0u64..30, any::<bool>())
            .prop_map(|(f, t, d)| json!({"from": f, "to": t, "dry_run": d}).to_string().into_bytes()),
        1 => Just(vec![b'{'; 20 * 1024]),
    ]
}

fn request() -> impl Strategy<Value = Fuzz> {
    (
        method(),
        path(),
        auth(),
        prop_oneof![Just(None), header_bytes().prop_map(Some)],
        content_type(),
        body(),
        prop::collection::vec(("[a-z-]{1,16}", header_bytes()), 0..3),
    )
        .prop_map(|(method, path, auth, key, ct, body, extra)| {
            let mut headers = Vec::new();
            if let Some(a) = auth {
                headers.push(("authorization", a));
            }
            if let Some(k) = key {
                headers.push(("idempotency-key", k));
            }
            if let Some(c) = ct {
                headers.push(("content-type", c));
            }
            for (name, value) in extra {
                // Leak the few distinct names: a bounded set, fine in a test.
                let name: &'static str = Box::leak(name.into_boxed_str());
                headers.push((name, value));
            }
            Fuzz {
                method,
                path,
                headers,
                body,
            }
        })
}

#[test]
fn ten_thousand_malformed_requests_never_5xx_nor_panic() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = rt.block_on(app_with(
        |c| c.status_cache_ms = 200,
        |b| {
            b.indexer_probe(Arc::new(Probe(Arc::new(IndexerMetrics::default()))))
                .indexer_stream("main")
        },
    ));
    let sent = AtomicU64::new(0);
    let started = Instant::now();
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&request(), |f| {
        let mut req = Request::builder().method(f.method.clone());
        req = req.uri(f.path.as_str());
        for (name, value) in &f.headers {
            if let Ok(v) = HeaderValue::from_bytes(value) {
                req = req.header(*name, v);
            }
        }
        let Ok(req) = req.body(Body::from(f.body.clone())) else {
            // Not expressible as an HTTP request at all (e.g. an invalid URI): nothing to send.
            return Ok(());
        };
        sent.fetch_add(1, Ordering::Relaxed);
        let a = rt.block_on(call(&app.router, req));
        prop_assert!(
            !a.status.is_server_error(),
            "{} {} -> {}: {}",
            f.method,
            f.path,
            a.status,
            a.text
        );
        if a.status.is_client_error() && f.method != Method::HEAD {
            let v: Value = serde_json::from_str(&a.text).map_err(|e| {
                TestCaseError::fail(format!("error body not JSON ({e}): {}", a.text))
            })?;
            prop_assert!(v["error"]["code"].is_string(), "{}", a.text);
            prop_assert!(v["error"]["message"].is_string(), "{}", a.text);
        }
        Ok(())
    });
    let n = sent.load(Ordering::Relaxed);
    eprintln!(
        "fuzz: {n} requests through the router in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(n >= MIN_SENT, "only {n} requests were sent");
    drop(app);
    drop(rt);
}
