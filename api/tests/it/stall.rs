//! An indexer stall stored by the indexer (`indexer_stalls`, possibly by another process) shows on `/ready`
//! (503 with the reason), `/status` and `/metrics`, and goes away once the indexer clears it.

use axum::http::StatusCode;
use payouts_store::cursor::advance_cursor;
use payouts_store::stalls::{clear_stall, report_stall, StallKind};

use crate::support::app_with;

#[tokio::test]
async fn a_stored_stall_fails_ready_and_shows_on_status_and_metrics() {
    let app = app_with(|c| c.status_cache_ms = 0, |b| b).await;
    let mut conn = app.db.conn().await;
    advance_cursor(&mut conn, "main", 100, Some("H100"))
        .await
        .unwrap();
    assert_eq!(app.get("/ready").await.status, StatusCode::OK);
    let v = app.read("/status").await.json();
    assert!(v["indexer"]["stall"].is_null(), "{v}");
    let m = app.read("/metrics").await.text;
    assert!(
        m.contains("payouts_indexer_stalled{stream=\"main\",kind=\"chain_gap\"} 0"),
        "{m}"
    );

    let reason = "block 102 (B102) has prev_hash P101, but the last processed block is 100 (H100): a block between them is missing from the source; not advancing, fetching again";
    report_stall(&mut conn, "main", StallKind::ChainGap, reason)
        .await
        .unwrap();
    let a = app.get("/ready").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text);
    assert_eq!(a.code(), "not_ready");
    assert!(
        a.message().contains("stalled (chain_gap)") && a.message().contains(reason),
        "{}",
        a.text
    );
    let v = app.read("/status").await.json();
    assert_eq!(v["indexer"]["stall"]["kind"], "chain_gap", "{v}");
    assert_eq!(v["indexer"]["stall"]["reason"], reason);
    let m = app.read("/metrics").await.text;
    assert!(
        m.contains("payouts_indexer_stalled{stream=\"main\",kind=\"chain_gap\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("payouts_indexer_stalled{stream=\"main\",kind=\"source\"} 0"),
        "{m}"
    );

    // Another stream's stall is not ours.
    clear_stall(&mut conn, "main").await.unwrap();
    report_stall(&mut conn, "other", StallKind::Source, "x")
        .await
        .unwrap();
    assert_eq!(app.get("/ready").await.status, StatusCode::OK);
    assert!(app.read("/status").await.json()["indexer"]["stall"].is_null());
}
