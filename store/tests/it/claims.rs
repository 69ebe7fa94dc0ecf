use std::time::Duration;

use payouts_store::claims::{
    get_claim, insert_claims, insert_manual_claim, lock_pending, update_claims, ClaimUpdate,
    NewClaim,
};
use payouts_store::testdb::TestDb;
use payouts_store::{AsyncConnection, ClaimId, ClaimStatus, StoreError, Yocto};

use crate::support::{event_claim, stored_tx};

#[tokio::test]
async fn same_event_claim_twice_leaves_one_row() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let a = event_claim("receipt1", 0, "alice.devnet", 5);
    let b = event_claim("receipt1", 1, "bob.devnet", 6);
    assert_eq!(
        insert_claims(&mut conn, &[a.clone(), b.clone()])
            .await
            .unwrap(),
        2
    );
    assert_eq!(insert_claims(&mut conn, &[a.clone(), b]).await.unwrap(), 0);
    assert_eq!(insert_claims(&mut conn, &[a]).await.unwrap(), 0);
    // Another rule matching the same log is another claim.
    let mut other_rule = event_claim("receipt1", 0, "alice.devnet", 5);
    other_rule.rule = Some("reveal".into());
    assert_eq!(insert_claims(&mut conn, &[other_rule]).await.unwrap(), 1);
    // The second event in the same log line's `data` array is another claim too.
    let mut second_item = event_claim("receipt1", 0, "carol.devnet", 7);
    second_item.event_index = Some(1);
    assert_eq!(
        insert_claims(&mut conn, &[second_item.clone(), second_item])
            .await
            .unwrap(),
        1
    );
    let count = lock_pending_count(&db).await;
    assert_eq!(count, 4);
}

#[tokio::test]
async fn manual_and_mixed_batches_skip_only_their_own_duplicates() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let manual =
        |key: &str| NewClaim::manual(key, "d", "token.devnet", "bob.devnet", Yocto(3), None);
    assert_eq!(
        insert_claims(&mut conn, &[manual("k1"), manual("k2")])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        insert_claims(&mut conn, &[manual("k2"), manual("k3")])
            .await
            .unwrap(),
        1
    );
    // Events and manual claims in one batch: each kind is skipped on its own key.
    let event = event_claim("receipt9", 0, "alice.devnet", 5);
    let mixed = [event.clone(), manual("k3"), manual("k4")];
    assert_eq!(insert_claims(&mut conn, &mixed).await.unwrap(), 2);
    assert_eq!(insert_claims(&mut conn, &mixed).await.unwrap(), 0);
    assert_eq!(insert_claims(&mut conn, &[event]).await.unwrap(), 0);
    assert_eq!(lock_pending_count(&db).await, 5);
}

async fn lock_pending_count(db: &TestDb) -> usize {
    let mut conn = db.conn().await;
    conn.transaction(async |c| lock_pending(c, "token.devnet", 1000).await)
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn large_batches_insert_in_chunks_and_count_only_new_rows() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let rows: Vec<NewClaim> = (0..2500)
        .map(|i| event_claim("r", i, "alice.devnet", 1))
        .collect();
    assert_eq!(insert_claims(&mut conn, &rows[..1200]).await.unwrap(), 1200);
    assert_eq!(insert_claims(&mut conn, &rows).await.unwrap(), 1300);
}

#[tokio::test]
async fn manual_claims_are_idempotent_on_their_key() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let row = NewClaim::manual(
        "key-1",
        "digest",
        "token.devnet",
        "bob.devnet",
        Yocto(10),
        Some("hi".into()),
    );
    let (first, created) = insert_manual_claim(&mut conn, &row).await.unwrap();
    assert!(created);
    let (again, created) = insert_manual_claim(&mut conn, &row).await.unwrap();
    assert!(!created);
    assert_eq!(first.id, again.id);
    assert_eq!(again.request_digest.as_deref(), Some("digest"));
    assert_eq!(again.amount, Yocto(10));
}

#[tokio::test]
async fn concurrent_lockers_get_disjoint_sets() {
    let db = TestDb::new().await;
    let mut setup = db.conn().await;
    let rows: Vec<NewClaim> = (0..10)
        .map(|i| event_claim("r", i, "alice.devnet", 1))
        .collect();
    insert_claims(&mut setup, &rows).await.unwrap();

    let (mut c1, mut c2) = (db.conn().await, db.conn().await);
    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    // Transaction 1 locks 4 claims and holds them until told to finish.
    let first = tokio::spawn(async move {
        c1.transaction(async |c| {
            let got = lock_pending(c, "token.devnet", 4).await?;
            let _ = locked_tx.send(got.iter().map(|c| c.id).collect::<Vec<_>>());
            let _ = release_rx.await;
            Ok::<_, StoreError>(())
        })
        .await
    });
    let ids1 = tokio::time::timeout(Duration::from_secs(30), locked_rx)
        .await
        .unwrap()
        .unwrap();
    // Transaction 2 runs while 1 holds its locks.
    let ids2: Vec<ClaimId> = c2
        .transaction(async |c| lock_pending(c, "token.devnet", 100).await)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    release_tx.send(()).unwrap();
    first.await.unwrap().unwrap();

    assert_eq!(ids1.len(), 4);
    assert_eq!(ids2.len(), 6);
    assert!(
        ids1.iter().all(|id| !ids2.contains(id)),
        "{ids1:?} overlaps {ids2:?}"
    );
    // Oldest first.
    assert!(ids1.iter().max() < ids2.iter().min());
}

#[tokio::test]
async fn lifecycle_moves_and_illegal_steps_change_nothing() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    insert_claims(
        &mut conn,
        &[
            event_claim("r", 0, "alice.devnet", 3),
            event_claim("r", 1, "bob.devnet", 4),
        ],
    )
    .await
    .unwrap();
    let ids: Vec<ClaimId> = conn
        .transaction(async |c| lock_pending(c, "token.devnet", 10).await)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    stored_tx(&mut conn, "tx1", 1, ids.iter().map(|i| i.0).collect()).await;
    let submit = ClaimUpdate::Submit { tx_hash: "tx1" };
    assert_eq!(
        update_claims(&mut conn, &ids, ClaimStatus::Pending, submit)
            .await
            .unwrap(),
        2
    );

    // The receipt failed: hand back with the reason, flagged for isolation.
    let requeue = ClaimUpdate::Requeue {
        error: "not registered",
        split_group: Some("tx1/0"),
    };
    update_claims(&mut conn, &ids, ClaimStatus::Submitted, requeue)
        .await
        .unwrap();
    let c = get_claim(&mut conn, ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (c.status, c.attempts, c.needs_isolation),
        (ClaimStatus::Pending, 1, true)
    );
    assert_eq!(c.last_error.as_deref(), Some("not registered"));

    stored_tx(&mut conn, "tx2", 2, ids.iter().map(|i| i.0).collect()).await;
    update_claims(
        &mut conn,
        &ids,
        ClaimStatus::Pending,
        ClaimUpdate::Submit { tx_hash: "tx2" },
    )
    .await
    .unwrap();
    update_claims(
        &mut conn,
        &ids[..1],
        ClaimStatus::Submitted,
        ClaimUpdate::Confirm,
    )
    .await
    .unwrap();
    let before = get_claim(&mut conn, ids[0]).await.unwrap().unwrap();
    assert_eq!(before.status, ClaimStatus::Confirmed);
    assert!(before.confirmed_at.is_some());

    // A confirmed claim can never go back.
    let err = update_claims(&mut conn, &ids[..1], ClaimStatus::Confirmed, requeue)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IllegalTransition { .. }), "{err}");
    // Claiming it is still submitted fails too, and the mixed set is left exactly as it was.
    let err = update_claims(&mut conn, &ids, ClaimStatus::Submitted, requeue)
        .await
        .unwrap_err();
    match err {
        StoreError::StateMismatch { ids: bad, expected } => {
            assert_eq!(bad, vec![ids[0]]);
            assert_eq!(expected, ClaimStatus::Submitted);
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(get_claim(&mut conn, ids[0]).await.unwrap().unwrap(), before);
    let second = get_claim(&mut conn, ids[1]).await.unwrap().unwrap();
    assert_eq!(
        (second.status, second.attempts),
        (ClaimStatus::Submitted, 1)
    );

    // Pending → confirmed skips a step: illegal.
    let err = update_claims(&mut conn, &ids, ClaimStatus::Pending, ClaimUpdate::Confirm)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IllegalTransition { .. }));
}

#[tokio::test]
async fn submitting_requires_a_stored_transaction() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    insert_claims(&mut conn, &[event_claim("r", 0, "alice.devnet", 3)])
        .await
        .unwrap();
    let id = conn
        .transaction(async |c| lock_pending(c, "token.devnet", 1).await)
        .await
        .unwrap()[0]
        .id;
    let err = update_claims(
        &mut conn,
        &[id],
        ClaimStatus::Pending,
        ClaimUpdate::Submit { tx_hash: "nope" },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Query(_)), "{err}");
    assert_eq!(
        get_claim(&mut conn, id).await.unwrap().unwrap().status,
        ClaimStatus::Pending
    );
}
