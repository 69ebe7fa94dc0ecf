//! Webhooks in the API: endpoint counts and dead deliveries in `/status` (by name, never the URL), the
//! outbox gauges and in-process counters in `/metrics`, and `POST /admin/webhooks/{id}/redeliver`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use payouts_store::webhooks::{
    get_delivery, mark_failed, pending_deliveries, sync_endpoints, Delivery, EndpointSpec,
};
use payouts_webhooks::WebhookMetrics;

use crate::support::{app, app_with, registry, Answer, App, OPS, READER, SENDER, TOKEN_A};

/// The URL carries credentials: none of it may show in `/status` or `/metrics`.
const SECRET_URL: &str = "https://hookuser:s3cret-pass@hooks.example.com/in?token=abc123";
const URL_PARTS: [&str; 6] = [
    "hookuser",
    "ledger.internal",
    "s3cret-pass",
    "hooks.example.com",
    "abc123",
    "https://",
];

fn spec(name: &str, url: &str, events: &[&str]) -> EndpointSpec {
    EndpointSpec {
        name: name.into(),
        url: url.into(),
        events: events.iter().map(|e| e.to_string()).collect(),
    }
}

/// Endpoint `crm` (every claim event, credentials in its URL) and `ledger` (confirmations only), then
/// `claims` new claims: `crm` gets one `claim.created` delivery each, `ledger` none.
async fn with_endpoints(app: &App, claims: u32) -> Vec<Delivery> {
    let mut conn = app.db.conn().await;
    sync_endpoints(
        &mut conn,
        &[
            spec(
                "crm",
                SECRET_URL,
                &[
                    "claim.created",
                    "claim.submitted",
                    "claim.confirmed",
                    "claim.failed",
                ],
            ),
            spec(
                "ledger",
                "http://ledger.internal/hook",
                &["claim.confirmed"],
            ),
        ],
    )
    .await
    .unwrap();
    drop(conn);
    app.insert_event_claims(claims, TOKEN_A, "alice.devnet", "wh")
        .await;
    let mut conn = app.db.conn().await;
    let ds = pending_deliveries(&mut conn, "crm", 100).await.unwrap();
    assert_eq!(ds.len(), claims as usize);
    ds
}

/// Marks delivery `id` dead after a 500 answer.
async fn kill(app: &App, id: i64) {
    let mut conn = app.db.conn().await;
    mark_failed(&mut conn, id, "HTTP 500", Some(500), None)
        .await
        .unwrap();
}

async fn redeliver(app: &App, id: &str, token: Option<&str>) -> Answer {
    let mut req = Request::post(format!("/admin/webhooks/{id}/redeliver"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    app.call(req.body(Body::empty()).unwrap()).await
}

fn assert_no_url(text: &str) {
    for part in URL_PARTS {
        assert!(!text.contains(part), "{part:?} leaked in:\n{text}");
    }
}

#[tokio::test]
async fn status_lists_endpoints_by_name_and_dead_deliveries_without_payload() {
    let app = app_with(|c| c.status_cache_ms = 0, |b| b).await;
    // No endpoints: an empty section, not a missing one.
    let v = app.read("/status").await.json();
    assert_eq!(v["webhooks"]["endpoints"], serde_json::json!([]));
    assert_eq!(v["webhooks"]["dead"], serde_json::json!([]));

    let ds = with_endpoints(&app, 3).await;
    kill(&app, ds[0].id).await;

    let a = app.read("/status").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_no_url(&a.text);
    let v = a.json();
    let eps = v["webhooks"]["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 2, "{v}");
    let (crm, ledger) = (&eps[0], &eps[1]);
    assert_eq!(crm["name"], "crm");
    assert_eq!(crm["enabled"], true);
    assert_eq!(crm["events"][0], "claim.created");
    assert_eq!(crm["pending"], 2);
    assert_eq!(crm["dead"], 1);
    assert_eq!(crm["delivered_total"], 0);
    assert!(crm["last_delivered_at"].is_null());
    assert!(crm["oldest_pending_at"].is_string(), "{crm}");
    assert!(crm["head_error"].is_null(), "the head never failed: {crm}");
    assert!(crm.get("url").is_none(), "{crm}");
    assert_eq!(ledger["name"], "ledger");
    assert_eq!(ledger["pending"], 0);
    assert_eq!(ledger["dead"], 0);
    assert!(ledger["oldest_pending_at"].is_null());

    let dead = v["webhooks"]["dead"].as_array().unwrap();
    assert_eq!(dead.len(), 1, "{v}");
    let d = &dead[0];
    assert_eq!(d["id"], ds[0].id);
    assert_eq!(d["endpoint"], "crm");
    assert_eq!(d["event_id"], ds[0].event_id.to_string());
    assert_eq!(d["event_type"], "claim.created");
    assert_eq!(d["claim_id"], ds[0].claim_id.unwrap());
    assert_eq!(d["status"], "dead");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["last_error"], "HTTP 500");
    assert_eq!(d["last_http_status"], 500);
    assert!(d["created_at"].is_string());
    assert!(d["dead_at"].is_string());
    assert!(d.get("payload").is_none(), "no payload in /status: {d}");
    assert!(
        !a.text.contains("\"payload\"") && !a.text.contains("receiver_id"),
        "{}",
        a.text
    );

    // The OpenAPI document describes the new section.
    let doc = app.get("/openapi.json").await.json();
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["StatusView"]["properties"]["webhooks"].is_object());
    assert!(schemas["WebhooksView"].is_object());
    assert!(schemas["WebhookEndpointView"]["properties"]["head_error"].is_object());
    assert!(schemas["WebhookEndpointView"]["properties"]
        .get("url")
        .is_none());
    assert!(schemas["WebhookDeliveryView"]["properties"]["dead_at"].is_object());
}

#[tokio::test]
async fn metrics_show_outbox_gauges_and_in_process_counters() {
    // No worker in this process: outbox gauges from the database only (read fresh on every scrape).
    let app = app_with(|c| c.status_cache_ms = 0, |b| b).await;
    let m = app.read("/metrics").await.text;
    assert!(
        !m.contains("payouts_webhook_"),
        "no endpoints, no series:\n{m}"
    );
    let ds = with_endpoints(&app, 2).await;
    kill(&app, ds[1].id).await;
    let m = app.read("/metrics").await.text;
    for needle in [
        "# TYPE payouts_webhook_pending gauge\n",
        "payouts_webhook_pending{endpoint=\"crm\"} 1\n",
        "payouts_webhook_pending{endpoint=\"ledger\"} 0\n",
        "# TYPE payouts_webhook_dead gauge\n",
        "payouts_webhook_dead{endpoint=\"crm\"} 1\n",
        "payouts_webhook_dead{endpoint=\"ledger\"} 0\n",
    ] {
        assert!(m.contains(needle), "missing {needle:?} in:\n{m}");
    }
    assert!(!m.contains("payouts_webhook_deliveries_total"), "{m}");
    assert_no_url(&m);

    // The worker runs here: its counters too.
    let wm = Arc::new(WebhookMetrics::default());
    wm.delivered.store(7, Ordering::Relaxed);
    wm.failed_attempts.store(3, Ordering::Relaxed);
    wm.dead.store(1, Ordering::Relaxed);
    let app = app_with(
        |_| {},
        |b| b.metrics_registry(registry(vec![Box::new(wm.clone())])),
    )
    .await;
    let m = app.read("/metrics").await.text;
    for needle in [
        "# TYPE payouts_webhook_deliveries counter\n",
        "payouts_webhook_deliveries_total 7\n",
        "# TYPE payouts_webhook_failed_attempts counter\n",
        "payouts_webhook_failed_attempts_total 3\n",
        "# TYPE payouts_webhook_dead counter\n",
        "payouts_webhook_dead_total 1\n",
    ] {
        assert!(m.contains(needle), "missing {needle:?} in:\n{m}");
    }
    wm.delivered.fetch_add(1, Ordering::Relaxed);
    let m = app.read("/metrics").await.text;
    assert!(m.contains("payouts_webhook_deliveries_total 8\n"), "{m}");
}

#[tokio::test]
async fn redeliver_needs_the_admin_scope_and_a_valid_id() {
    let app = app().await;
    let ds = with_endpoints(&app, 1).await;
    kill(&app, ds[0].id).await;
    let id = ds[0].id.to_string();

    let a = redeliver(&app, &id, None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text);
    assert_eq!(a.code(), "unauthorized");
    for token in [READER, SENDER] {
        let a = redeliver(&app, &id, Some(token)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
        assert_eq!(a.code(), "forbidden");
    }
    // A bad id without a token is still 401: auth comes first.
    assert_eq!(
        redeliver(&app, "abc", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    for bad in ["abc", "-1", "0", "1.5", "+1", "99999999999999999999", "%20"] {
        let a = redeliver(&app, bad, Some(OPS)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {}", a.text);
        assert_eq!(a.code(), "invalid_id", "{bad}");
    }
    let a = redeliver(&app, "987654321", Some(OPS)).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
    assert_eq!(a.code(), "not_found");
    assert!(a.message().contains("987654321"), "{}", a.text);

    // Only POST.
    let a = app
        .get_auth(&format!("/admin/webhooks/{id}/redeliver"), OPS)
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{}", a.text);
    assert_eq!(a.code(), "method_not_allowed");

    // None of these touched the delivery.
    let mut conn = app.db.conn().await;
    let d = get_delivery(&mut conn, ds[0].id).await.unwrap().unwrap();
    assert_eq!(d.status, "dead");
    assert_eq!(d.attempts, 1);
}

#[tokio::test]
async fn redeliver_queues_a_dead_delivery_once() {
    // The default status cache: a redelivery must not leave the dashboard showing it dead.
    let app = app().await;
    let ds = with_endpoints(&app, 3).await;
    kill(&app, ds[0].id).await;
    kill(&app, ds[1].id).await;
    let v = app.read("/status").await.json();
    assert_eq!(v["webhooks"]["dead"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["webhooks"]["endpoints"][0]["dead"], 2);

    // Still pending: nothing to do.
    let a = redeliver(&app, &ds[2].id.to_string(), Some(OPS)).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert_eq!(a.code(), "already_pending");

    let a = redeliver(&app, &ds[0].id.to_string(), Some(OPS)).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    let v = a.json();
    assert_eq!(v["id"], ds[0].id);
    assert_eq!(v["endpoint"], "crm");
    assert_eq!(v["event_id"], ds[0].event_id.to_string());
    assert_eq!(v["event_type"], "claim.created");
    assert_eq!(v["claim_id"], ds[0].claim_id.unwrap());
    assert_eq!(v["status"], "pending");
    assert_eq!(v["attempts"], 0);
    assert_eq!(
        v["last_error"], "HTTP 500",
        "the last error stays for context"
    );
    assert!(v["dead_at"].is_null());
    assert!(v.get("payload").is_none(), "{v}");
    assert_no_url(&a.text);

    let mut conn = app.db.conn().await;
    let d = get_delivery(&mut conn, ds[0].id).await.unwrap().unwrap();
    assert_eq!(d.status, "pending");
    assert_eq!(d.attempts, 0);
    assert!(d.dead_at.is_none());
    assert_eq!(d.payload, ds[0].payload, "the frozen payload is unchanged");

    // Again: it is pending now.
    let a = redeliver(&app, &ds[0].id.to_string(), Some(OPS)).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert_eq!(a.code(), "already_pending");

    // The next /status is fresh, not the cached one.
    let v = app.read("/status").await.json();
    let dead = v["webhooks"]["dead"].as_array().unwrap();
    assert_eq!(dead.len(), 1, "{v}");
    assert_eq!(dead[0]["id"], ds[1].id);
    assert_eq!(v["webhooks"]["endpoints"][0]["dead"], 1);
    assert_eq!(v["webhooks"]["endpoints"][0]["pending"], 2);

    // A JSON body (even with content) is accepted and ignored.
    let a = app
        .call(
            Request::post(format!("/admin/webhooks/{}/redeliver", ds[1].id))
                .header("authorization", format!("Bearer {OPS}"))
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    assert_eq!(a.json()["status"], "pending");
    let d = get_delivery(&mut conn, ds[1].id).await.unwrap().unwrap();
    assert_eq!(d.status, "pending");
}
