//! Read routes: `/claims` (filters, keyset pagination), `/claims/{id}`, `/health`, `/openapi.json`, the
//! dashboard assets, axum's own 404/405 as JSON, and `read_requires_token`.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use payouts_store::claims::{update_claims, ClaimUpdate};
use payouts_store::{ClaimId, ClaimStatus};

use crate::support::{app, app_with, OPS, READER, SCRAPER, SENDER, TOKEN_A, TOKEN_B};

#[tokio::test]
async fn claims_are_listed_newest_first_with_keyset_pagination() {
    let app = app().await;
    app.insert_event_claims(5, TOKEN_A, "alice.devnet", "a")
        .await;
    app.insert_event_claims(3, TOKEN_B, "bob.devnet", "b").await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/claims?limit=3&cursor={c}"),
            None => "/claims?limit=3".to_string(),
        };
        let a = app.read(&path).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let v = a.json();
        for c in v["claims"].as_array().unwrap() {
            seen.push(c["id"].as_i64().unwrap());
            assert!(c["amount"].is_string());
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );

    // Filters.
    let v = app.read("/claims?receiver=bob.devnet").await.json();
    assert_eq!(v["claims"].as_array().unwrap().len(), 3);
    assert!(v["next_cursor"].is_null());
    let v = app
        .read(&format!("/claims?token={TOKEN_A}&limit=500"))
        .await
        .json();
    assert_eq!(v["claims"].as_array().unwrap().len(), 5);
    let first = seen[seen.len() - 1];
    let mut conn = app.db.conn().await;
    update_claims(
        &mut conn,
        &[ClaimId(first)],
        ClaimStatus::Pending,
        ClaimUpdate::Fail {
            error: "receiver not registered",
        },
    )
    .await
    .unwrap();
    let v = app.read("/claims?status=failed").await.json();
    let list = v["claims"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], first);
    assert_eq!(list[0]["last_error"], "receiver not registered");
    let v = app
        .read("/claims?status=pending&receiver=alice.devnet&token=token.devnet")
        .await
        .json();
    assert_eq!(v["claims"].as_array().unwrap().len(), 4);
    // Empty values count as absent.
    let v = app
        .read("/claims?status=&receiver=&token=&cursor=&limit=")
        .await
        .json();
    assert_eq!(v["claims"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn bad_claim_queries_are_400() {
    let app = app().await;
    for q in [
        "status=paid",
        "status=PENDING",
        "limit=0",
        "limit=-1",
        "limit=abc",
        "limit=501",
        "limit=99999999999999999999",
        "cursor=abc",
        "cursor=0",
        "cursor=-5",
        "receiver=Not%20An%20Account",
        "token=%00",
        "unknown=1",
        "status=pending&status=failed",
    ] {
        let a = app.read(&format!("/claims?{q}")).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{q}: {}", a.text);
        assert_eq!(a.code(), "invalid_query", "{q}");
    }
}

#[tokio::test]
async fn one_claim_by_id() {
    let app = app().await;
    app.insert_event_claims(1, TOKEN_A, "alice.devnet", "x")
        .await;
    let list = app.read("/claims").await.json();
    let id = list["claims"][0]["id"].as_i64().unwrap();
    let a = app.read(&format!("/claims/{id}")).await;
    assert_eq!(a.status, StatusCode::OK);
    let v = a.json();
    assert_eq!(v["id"], id);
    assert_eq!(v["source"], "event");
    assert_eq!(v["rule"], "claims");
    assert_eq!(v["receipt_id"], "x-0");

    let a = app.read(&format!("/claims/{}", id + 1000)).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.code(), "not_found");
    for bad in ["abc", "-1", "0", "1.5", "99999999999999999999", "%20"] {
        let a = app.read(&format!("/claims/{bad}")).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {}", a.text);
        assert_eq!(a.code(), "invalid_id");
    }
}

#[tokio::test]
async fn health_openapi_and_dashboard() {
    let app = app().await;
    let a = app.get("/health").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["status"], "ok");

    let a = app.get("/openapi.json").await;
    assert_eq!(a.status, StatusCode::OK);
    let doc = a.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/health",
        "/ready",
        "/status",
        "/metrics",
        "/send-ft",
        "/claims",
        "/claims/{id}",
        "/admin/replay",
        "/admin/webhooks/{id}/redeliver",
        "/incidents",
        "/admin/incidents/{id}/clear",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["SendFtRequest"].is_object());

    let a = app.get("/").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(a.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert!(a.text.contains("id=\"send-form\""));
    let a = app.get("/assets/app.js").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.text.contains("Idempotency-Key"));
    assert!(a.text.contains("randomUUID"));
    let a = app.get("/assets/app.css").await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json() {
    let app = app().await;
    for path in ["/nope", "/claims/1/x", "/admin", "/send-ft/", "/%ff"] {
        let a = app.get(path).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(a.code(), "not_found");
        assert_eq!(a.headers["content-type"], "application/json");
    }
    for (method, path) in [
        (Method::GET, "/send-ft"),
        (Method::DELETE, "/claims/1"),
        (Method::POST, "/status"),
        (Method::PUT, "/admin/replay"),
    ] {
        let req = Request::builder()
            .method(method.clone())
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let a = app.call(req).await;
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(a.code(), "method_not_allowed");
        assert!(a.headers.contains_key("allow"), "{:?}", a.headers);
    }
}

#[tokio::test]
async fn reads_and_metrics_are_closed_by_default() {
    let app = app().await;
    for path in ["/status", "/claims", "/claims/1", "/incidents", "/metrics"] {
        let a = app.get(path).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(a.code(), "unauthorized", "{path}");
        assert_eq!(a.headers["www-authenticate"], "Bearer");
        // Nothing private in the refusal.
        assert!(!a.text.contains("devnet"), "{path}: {}", a.text);
        let a = app.get_auth(path, SENDER).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}");
        assert!(a.message().contains("read"));
    }
    assert_eq!(app.get_auth("/status", READER).await.status, StatusCode::OK);
    assert_eq!(app.get_auth("/claims", OPS).await.status, StatusCode::OK);
    assert_eq!(
        app.get_auth("/claims/1", READER).await.status,
        StatusCode::NOT_FOUND
    );
    // /metrics: the `read` or the `metrics` scope; the `metrics` scope reads nothing else.
    assert_eq!(
        app.get_auth("/metrics", READER).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get_auth("/metrics", SCRAPER).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get_auth("/status", SCRAPER).await.status,
        StatusCode::FORBIDDEN
    );
    // Always open, and saying nothing private.
    for path in ["/health", "/openapi.json", "/", "/ready"] {
        assert_eq!(app.get(path).await.status, StatusCode::OK, "{path}");
    }
    let health = app.get("/health").await.json();
    assert_eq!(health.as_object().unwrap().len(), 2, "{health}");
}

#[tokio::test]
async fn reads_and_metrics_can_be_opened() {
    let app = app_with(
        |c| {
            c.read_requires_token = false;
            c.metrics_open = true;
        },
        |b| b,
    )
    .await;
    for path in ["/status", "/claims", "/incidents", "/metrics"] {
        assert_eq!(app.get(path).await.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429_with_retry_after() {
    let app = app_with(
        |c| {
            c.rate_limit_token_per_second = 1;
            c.rate_limit_token_burst = 2;
        },
        |b| b,
    )
    .await;
    assert_eq!(app.read("/status").await.status, StatusCode::OK);
    assert_eq!(app.read("/claims").await.status, StatusCode::OK);
    let a = app.read("/claims").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.text);
    assert_eq!(a.code(), "rate_limited");
    let wait: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    // Another token has a bucket of its own.
    assert_eq!(app.get_auth("/claims", OPS).await.status, StatusCode::OK);
    // Liveness is never limited.
    for _ in 0..5 {
        assert_eq!(app.get("/health").await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn a_foreign_host_gets_421_on_a_loopback_listener() {
    let app = app().await;
    let with_host = |path: &str, host: &str| {
        Request::get(path)
            .header("host", host)
            .header("authorization", format!("Bearer {READER}"))
            .body(Body::empty())
            .unwrap()
    };
    for host in [
        "rebind.attacker.example",
        "rebind.attacker.example:8080",
        "10.0.0.1:8080",
    ] {
        let a = app.call(with_host("/status", host)).await;
        assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST, "{host}");
        assert_eq!(a.code(), "unknown_host");
        // Probes answer whatever the Host.
        assert_eq!(
            app.call(with_host("/health", host)).await.status,
            StatusCode::OK
        );
    }
    for host in ["127.0.0.1:8080", "localhost", "[::1]:8080"] {
        assert_eq!(
            app.call(with_host("/status", host)).await.status,
            StatusCode::OK,
            "{host}"
        );
    }
    let open = app_with(|c| c.allowed_hosts = vec!["payouts.internal".into()], |b| b).await;
    assert_eq!(
        open.call(with_host("/status", "payouts.internal:443"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        open.call(with_host("/status", "localhost")).await.status,
        StatusCode::MISDIRECTED_REQUEST
    );
}

#[tokio::test]
async fn openapi_states_the_real_constraints() {
    let app = app().await;
    let doc = app.get("/openapi.json").await.json();
    let send = &doc["components"]["schemas"]["SendFtRequest"];
    assert_eq!(send["additionalProperties"], false);
    assert_eq!(
        send["properties"]["token"]["enum"],
        serde_json::json!([TOKEN_A, TOKEN_B, null])
    );
    assert_eq!(send["properties"]["receiver_id"]["maxLength"], 64);
    assert!(send["properties"]["memo"]["pattern"]
        .as_str()
        .unwrap()
        .contains("\\u202E"));
    assert!(send["properties"]["amount"]["pattern"]
        .as_str()
        .unwrap()
        .starts_with("^(?:[1-9]"));
    for (path, method) in [
        ("/status", "get"),
        ("/claims", "get"),
        ("/metrics", "get"),
        ("/send-ft", "post"),
    ] {
        let op = &doc["paths"][path][method];
        assert_eq!(
            op["security"],
            serde_json::json!([{"bearer": []}]),
            "{path}"
        );
        for code in ["401", "421", "429", "500"] {
            assert!(op["responses"][code].is_object(), "{path} {code}");
        }
        assert!(op["responses"]["429"]["headers"]["Retry-After"].is_object());
    }
    assert!(doc["paths"]["/health"]["get"]["responses"]["429"].is_null());
    let limit = doc["paths"]["/claims"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(
        limit["schema"]["pattern"],
        "^$|^(?:[1-9][0-9]{0,1}|[1-4][0-9]{2}|500)$"
    );
    // With reads opened, the document says so.
    let open = app_with(|c| c.read_requires_token = false, |b| b).await;
    let doc = open.get("/openapi.json").await.json();
    assert_eq!(
        doc["paths"]["/status"]["get"]["security"],
        serde_json::json!([{}, {"bearer": []}])
    );
}
