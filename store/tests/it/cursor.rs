use payouts_store::claims::insert_claims;
use payouts_store::cursor::{advance_cursor, read_cursor};
use payouts_store::testdb::TestDb;
use payouts_store::{AsyncConnection, StoreError};

use crate::support::event_claim;

#[tokio::test]
async fn cursor_moves_forward_only() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    assert_eq!(read_cursor(&mut conn, "main").await.unwrap(), None);
    advance_cursor(&mut conn, "main", 10, Some("h10"))
        .await
        .unwrap();
    advance_cursor(&mut conn, "main", 11, None).await.unwrap();
    let c = read_cursor(&mut conn, "main").await.unwrap().unwrap();
    assert_eq!(c.block_height, 11);
    for stale in [11, 5] {
        let err = advance_cursor(&mut conn, "main", stale, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::CursorRegression { current: 11, .. }),
            "{err}"
        );
    }
    // Streams are independent.
    advance_cursor(&mut conn, "other", 3, None).await.unwrap();
    assert_eq!(
        read_cursor(&mut conn, "main")
            .await
            .unwrap()
            .unwrap()
            .block_height,
        11
    );
}

#[tokio::test]
async fn failure_between_claims_and_cursor_leaves_neither() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    advance_cursor(&mut conn, "main", 99, None).await.unwrap();
    let result = conn
        .transaction(async |c| {
            let n = insert_claims(c, &[event_claim("r", 0, "alice.devnet", 1)]).await?;
            assert_eq!(n, 1);
            // The cursor move fails (a block already committed): the whole block rolls back.
            advance_cursor(c, "main", 99, None).await?;
            Ok::<_, StoreError>(())
        })
        .await;
    assert!(result.is_err());
    assert_eq!(
        read_cursor(&mut conn, "main")
            .await
            .unwrap()
            .unwrap()
            .block_height,
        99
    );
    let n = conn
        .transaction(async |c| payouts_store::claims::lock_pending(c, "token.devnet", 10).await)
        .await
        .unwrap()
        .len();
    assert_eq!(n, 0);

    // And the same block committed properly moves both.
    conn.transaction(async |c| {
        insert_claims(c, &[event_claim("r", 0, "alice.devnet", 1)]).await?;
        advance_cursor(c, "main", 100, None).await
    })
    .await
    .unwrap();
    assert_eq!(
        read_cursor(&mut conn, "main")
            .await
            .unwrap()
            .unwrap()
            .block_height,
        100
    );
}

#[tokio::test]
async fn a_stall_is_reported_refreshed_and_cleared() {
    use payouts_store::stalls::{clear_stall, read_stall, report_stall, StallKind};
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    assert_eq!(read_stall(&mut conn, "main").await.unwrap(), None);
    report_stall(&mut conn, "main", StallKind::Source, "shard_3.json missing")
        .await
        .unwrap();
    let first = read_stall(&mut conn, "main").await.unwrap().unwrap();
    assert_eq!(
        (first.kind, first.reason.as_str()),
        (StallKind::Source, "shard_3.json missing")
    );
    // Same kind: `since` stays, the reason is the latest.
    report_stall(&mut conn, "main", StallKind::Source, "still missing")
        .await
        .unwrap();
    let again = read_stall(&mut conn, "main").await.unwrap().unwrap();
    assert_eq!(
        (again.since, again.reason.as_str()),
        (first.since, "still missing")
    );
    report_stall(&mut conn, "main", StallKind::ChainGap, "gap")
        .await
        .unwrap();
    assert_eq!(
        read_stall(&mut conn, "main").await.unwrap().unwrap().kind,
        StallKind::ChainGap
    );
    // Streams are independent.
    assert_eq!(read_stall(&mut conn, "other").await.unwrap(), None);
    assert!(clear_stall(&mut conn, "main").await.unwrap());
    assert!(!clear_stall(&mut conn, "main").await.unwrap());
    assert_eq!(read_stall(&mut conn, "main").await.unwrap(), None);
}
