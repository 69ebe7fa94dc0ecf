//! The dashboard in headless Chromium, served by a real server on a fresh database: the numbers change as
//! claims are paid, the manual send form creates a claim row, and a screenshot is saved under the target
//! directory (`<target>/screenshots/dashboard.png`).

use std::path::PathBuf;
use std::time::Duration;

use payouts_store::api_queries::{list_claims, ClaimFilter};
use payouts_store::claims::{update_claims, ClaimUpdate};
use payouts_store::keys::{lease_keys, register_keys};
use payouts_store::status::{report_heartbeat, report_started};
use payouts_store::webhooks::{sync_endpoints, EndpointSpec};
use payouts_store::{ClaimSource, ClaimStatus, Yocto};
use serde_json::Value;

use crate::cdp::Browser;
use crate::status::submit;
use crate::support::{app_with, eventually, Server, OPS, TOKEN_A};

pub(crate) const WAIT: Duration = Duration::from_secs(30);

pub(crate) fn screenshot_path_named(name: &str) -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target dir>/tmp`, so this honours CARGO_TARGET_DIR.
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("screenshots")
        .join(name)
}

fn screenshot_path() -> PathBuf {
    screenshot_path_named("dashboard.png")
}

pub(crate) async fn text_of(b: &mut Browser, id: &str) -> String {
    b.eval(&format!(
        "(document.getElementById({id:?}) || {{textContent: ''}}).textContent"
    ))
    .await
    .as_str()
    .unwrap_or_default()
    .to_string()
}

/// Polls the JS expression `cond` until it is truthy; returns its value.
pub(crate) async fn wait_js(b: &mut Browser, cond: &str, what: &str) -> Value {
    wait_js_within(b, cond, what, WAIT).await
}

/// [`wait_js`] with its own deadline.
pub(crate) async fn wait_js_within(
    b: &mut Browser,
    cond: &str,
    what: &str,
    within: Duration,
) -> Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let v = b.eval(cond).await;
        let truthy = match &v {
            Value::Null => false,
            Value::Bool(x) => *x,
            Value::String(s) => !s.is_empty(),
            Value::Number(n) => n.as_f64() != Some(0.0),
            _ => true,
        };
        if truthy {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what} (`{cond}`)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn wait_text(b: &mut Browser, id: &str, want: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let got = text_of(b, id).await;
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "#{id} shows {got:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn dashboard_shows_live_numbers_and_sends_a_manual_payout() {
    let app = app_with(|c| c.status_cache_ms = 200, |b| b).await;
    let mut conn = app.db.conn().await;
    // A webhook endpoint: each new claim queues a delivery to it.
    sync_endpoints(
        &mut conn,
        &[EndpointSpec {
            name: "crm-hook".into(),
            url: "https://user:secret@crm.example.com/hook".into(),
            events: vec!["claim.created".into()],
        }],
    )
    .await
    .unwrap();
    app.insert_event_claims(10, TOKEN_A, "alice.devnet", "ui")
        .await;
    register_keys(
        &mut conn,
        "treasury.devnet",
        &["ed25519:AAAAkey1".into(), "ed25519:BBBBkey2".into()],
    )
    .await
    .unwrap();
    lease_keys(
        &mut conn,
        "treasury.devnet",
        None,
        "distributor-1",
        2,
        600_000,
    )
    .await
    .unwrap();
    report_started(&mut conn, "distributor-1").await.unwrap();
    report_heartbeat(&mut conn, "distributor-1", None)
        .await
        .unwrap();
    let server = Server::start(app.state.clone()).await;

    let mut b = Browser::launch(1440, 900).await;
    b.navigate(&server.url("/")).await;
    // Reads need a token: the dashboard asks for one once and keeps it in the tab (the send form too).
    wait_js(
        &mut b,
        "(() => { const f = document.getElementById('login-form'); \
          return f !== null && !f.classList.contains('hidden'); })()",
        "the read-token prompt",
    )
    .await;
    b.type_into("login-token", OPS).await;
    b.click("login-submit").await;
    wait_text(&mut b, "count-pending", "10").await;
    wait_text(&mut b, "count-confirmed", "0").await;
    wait_text(&mut b, "tps-1m", "0.00").await;
    wait_js(
        &mut b,
        "(() => { const t = document.getElementById('webhook-endpoints-body').textContent; \
          return t.includes('crm-hook') && t.includes('10') && !t.includes('crm.example.com'); })()",
        "the webhook endpoint with its 10 pending deliveries",
    )
    .await;

    // The distributor pays 6 claims (submitted, then confirmed) and one fails for good.
    let pending: Vec<_> = list_claims(
        &mut conn,
        &ClaimFilter {
            status: Some(ClaimStatus::Pending),
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .into_iter()
    .map(|c| c.id)
    .collect();
    submit(&mut conn, "tx-ui-1", "ed25519:AAAAkey1", 1, &pending[..6]).await;
    wait_text(&mut b, "count-submitted", "6").await;
    update_claims(
        &mut conn,
        &pending[..6],
        ClaimStatus::Submitted,
        ClaimUpdate::Confirm,
    )
    .await
    .unwrap();
    update_claims(
        &mut conn,
        &pending[6..7],
        ClaimStatus::Pending,
        ClaimUpdate::Fail {
            error: "Smart contract panicked: The account alice.devnet is not registered",
        },
    )
    .await
    .unwrap();
    wait_text(&mut b, "count-confirmed", "6").await;
    wait_text(&mut b, "count-pending", "3").await;
    wait_text(&mut b, "count-failed", "1").await;
    wait_text(&mut b, "tps-1m", "0.10").await;
    wait_js(
        &mut b,
        "document.getElementById('failures-body').textContent.includes('is not registered')",
        "the failure reason in the failures table",
    )
    .await;

    // Manual send through the form, as an operator would.
    assert_eq!(
        b.eval("document.getElementById('api-token').value").await,
        Value::String(OPS.into())
    );
    b.type_into("send-receiver", "carol.devnet").await;
    b.type_into("send-amount", "123456789").await;
    b.type_into("send-memo", "dashboard test").await;
    b.click("send-submit").await;
    wait_js(
        &mut b,
        "(() => { const r = document.getElementById('send-result'); \
          return r.classList.contains('ok') || r.classList.contains('bad'); })()",
        "the send result",
    )
    .await;
    let result = text_of(&mut b, "send-result").await;
    assert!(
        result.starts_with("Claim "),
        "send failed in the page: {result}"
    );

    let row = eventually(WAIT, "the manual claim row", || {
        let pool = app.pool.clone();
        async move {
            let mut conn = payouts_store::get(&pool).await.ok()?;
            let rows = list_claims(
                &mut conn,
                &ClaimFilter {
                    receiver_id: Some("carol.devnet".into()),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .ok()?;
            rows.into_iter().next()
        }
    })
    .await;
    assert_eq!(row.source, ClaimSource::Manual);
    assert_eq!(row.amount, Yocto(123_456_789));
    assert_eq!(row.token_contract, TOKEN_A);
    assert_eq!(row.memo.as_deref(), Some("dashboard test"));
    // Stored scoped to the API token that sent it.
    let stored = row.idempotency_key.clone().unwrap();
    let key = stored
        .strip_prefix("ops ")
        .unwrap_or_else(|| panic!("{stored}"));
    assert_eq!(key.len(), 36, "a crypto.randomUUID() key: {key}");
    assert!(result.contains(&row.id.to_string()), "{result}");
    wait_text(&mut b, "count-pending", "4").await;

    // Search the recent claims for the new receiver.
    b.type_into("search-text", "carol.devnet").await;
    b.eval("document.getElementById('search-form').requestSubmit(); true")
        .await;
    wait_js(
        &mut b,
        "(() => { const rows = document.querySelectorAll('#claims-body tr'); \
          return rows.length === 1 && rows[0].textContent.includes('carol.devnet'); })()",
        "the search result",
    )
    .await;
    b.click("search-clear").await;
    wait_js(
        &mut b,
        "document.querySelectorAll('#claims-body tr').length === 11",
        "all recent claims again",
    )
    .await;

    // The chart has a line, the key pool its two keys, and nothing in the page failed.
    let paths = b
        .eval("document.querySelectorAll('#chart svg path').length")
        .await;
    assert_eq!(paths.as_u64(), Some(2));
    wait_text(&mut b, "keys-summary", "2/2 leased · 1 in flight").await;
    // A live distributor heartbeats every few seconds, and /status counts it alive only while its last
    // heartbeat is under 30 s old; the one sent in the setup can be older by now on a slow machine
    // (Chromium's start alone can take long), so beat again as the real one would.
    report_heartbeat(&mut conn, "distributor-1", None)
        .await
        .unwrap();
    wait_text(&mut b, "dist-state", "1 running").await;
    let banner_hidden = b
        .eval("document.getElementById('banner').classList.contains('hidden')")
        .await;
    assert_eq!(banner_hidden, Value::Bool(true));

    let shot = screenshot_path();
    b.screenshot(&shot).await;
    let size = std::fs::metadata(&shot).unwrap().len();
    assert!(
        size > 10_000,
        "screenshot {} is only {size} bytes",
        shot.display()
    );
    eprintln!("dashboard screenshot: {}", shot.display());
    server.stop.cancel();
}
