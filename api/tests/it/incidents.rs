//! Incidents in the API: listed on `/status` and `GET /incidents`, counted in `/metrics`
//! (`payouts_incidents_open{kind}`), cleared with `POST /admin/incidents/{id}/clear` (scope `admin`).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use payouts_store::incidents::{detect_memo_payments, record_nonce_ahead, MemoSighting};
use payouts_store::keys::register_keys;
use payouts_store::{ClaimId, Yocto};

use crate::support::{app, app_with, Answer, App, OPS, READER, SENDER, TOKEN_A};

async fn clear(app: &App, id: &str, token: Option<&str>) -> Answer {
    let mut req = Request::post(format!("/admin/incidents/{id}/clear"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    app.call(req.body(Body::empty()).unwrap()).await
}

/// A memo incident for a claim of `TOKEN_A` and a key incident (every token); returns their ids.
async fn incidents(app: &App) -> (i64, i64) {
    app.insert_event_claims(1, TOKEN_A, "alice.devnet", "inc")
        .await;
    let mut conn = app.db.conn().await;
    register_keys(&mut conn, "treasury.devnet", &["ed25519:k".into()])
        .await
        .unwrap();
    let seen = MemoSighting {
        claim_id: ClaimId(1),
        token: TOKEN_A,
        from: "mallory.devnet",
        to: "alice.devnet",
        amount: Yocto(340_282_366_920_938_463_463_374_607_431_768_211_455),
        receipt_id: "rc-1".into(),
        block_height: 9,
    };
    assert_eq!(detect_memo_payments(&mut conn, &[seen]).await.unwrap(), 1);
    assert!(
        record_nonce_ahead(&mut conn, "treasury.devnet", "ed25519:k", 3, 9)
            .await
            .unwrap()
    );
    let open = payouts_store::incidents::list_incidents(&mut conn, true, 10)
        .await
        .unwrap();
    (open[1].id, open[0].id)
}

#[tokio::test]
async fn open_incidents_show_in_status_metrics_and_the_list() {
    let app = app_with(|c| c.status_cache_ms = 0, |b| b).await;
    let m = app.read("/metrics").await.text;
    for kind in [
        "unexpected_memo_payment",
        "dead_transaction_landed",
        "nonce_ahead",
    ] {
        assert!(
            m.contains(&format!("payouts_incidents_open{{kind=\"{kind}\"}} 0\n")),
            "{m}"
        );
    }
    let (memo, key) = incidents(&app).await;

    let s = app.read("/status").await.json();
    let list = s["incidents"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{s}");
    assert_eq!(list[0]["id"], memo, "oldest first");
    assert_eq!(list[0]["kind"], "unexpected_memo_payment");
    assert_eq!(list[0]["token"], TOKEN_A);
    assert_eq!(list[0]["claim_id"], 1);
    // Money stays a decimal string.
    assert_eq!(
        list[0]["details"]["amount"],
        "340282366920938463463374607431768211455"
    );
    assert_eq!(list[1]["kind"], "nonce_ahead");
    assert!(list[1]["token"].is_null(), "every token");
    assert_eq!(list[1]["details"]["chain_nonce"], 9);

    let m = app.read("/metrics").await.text;
    assert!(m.contains("# TYPE payouts_incidents_open gauge\n"), "{m}");
    assert!(
        m.contains("payouts_incidents_open{kind=\"unexpected_memo_payment\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("payouts_incidents_open{kind=\"nonce_ahead\"} 1\n"),
        "{m}"
    );

    let a = app.read("/incidents?open=true&limit=1").await;
    assert_eq!(a.status, StatusCode::OK);
    let l = a.json();
    assert_eq!(l["incidents"].as_array().unwrap().len(), 1);
    assert_eq!(l["incidents"][0]["id"], key, "newest first");
    for bad in [
        "/incidents?open=yes",
        "/incidents?limit=0",
        "/incidents?limit=501",
        "/incidents?x=1",
    ] {
        let a = app.read(bad).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(a.code(), "invalid_query", "{bad}");
    }
    let doc = app.get("/openapi.json").await.json();
    assert!(doc["components"]["schemas"]["StatusView"]["properties"]["incidents"].is_object());
    assert!(doc["components"]["schemas"]["IncidentView"].is_object());
}

#[tokio::test]
async fn clearing_needs_the_admin_scope_and_is_recorded() {
    let app = app().await;
    let (memo, key) = incidents(&app).await;
    assert_eq!(
        app.read("/status").await.json()["incidents"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let id = memo.to_string();
    assert_eq!(
        clear(&app, &id, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        clear(&app, &id, Some(SENDER)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        clear(&app, &id, Some(READER)).await.status,
        StatusCode::FORBIDDEN
    );
    for bad in ["0", "-1", "x", "1.5", "99999999999999999999"] {
        let a = clear(&app, bad, Some(OPS)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(a.code(), "invalid_id");
    }
    let a = clear(&app, "424242", Some(OPS)).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    let a = clear(&app, &id, Some(OPS)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let v = a.json();
    assert_eq!(v["cleared_by"], "ops");
    assert!(v["cleared_at"].is_string());
    let a = clear(&app, &id, Some(OPS)).await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.code(), "already_cleared");
    assert!(a.message().contains("ops"));

    // The status document is fresh after the change: only the key incident is left.
    let s = app.read("/status").await.json();
    let list = s["incidents"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{s}");
    assert_eq!(list[0]["id"], key);
    let m = app.read("/metrics").await.text;
    assert!(
        m.contains("payouts_incidents_open{kind=\"unexpected_memo_payment\"} 0\n"),
        "{m}"
    );
    let all = app.read("/incidents").await.json();
    assert_eq!(all["incidents"].as_array().unwrap().len(), 2);
}
