//! The spend ledger: reservations within the cap, released once when a transaction paid nothing, and one
//! reserver at a time per token.

use std::time::Duration;

use payouts_store::reconcile::{settle, Settlement};
use payouts_store::spend::{lock_spend, reserve_spend, spent_today};
use payouts_store::testdb::TestDb;
use payouts_store::transactions::{bury, get_tx, insert_tx, NewTx};
use payouts_store::{AsyncConnection, AsyncPgConnection, StoreError, Yocto};

const TOKEN: &str = "token.devnet";

/// Stores transaction `hash` paying `amount` and reserves it, as `prepare` does: under the spend lock, in
/// one DB transaction. Returns whether the reservation fit `cap`.
async fn reserve_tx(
    conn: &mut AsyncPgConnection,
    hash: &str,
    nonce: i64,
    amount: u128,
    cap: u128,
) -> bool {
    conn.transaction(async |c| {
        let spend = lock_spend(c, TOKEN, None).await?;
        let tx = NewTx {
            hash: hash.into(),
            signer_id: "treasury.devnet".into(),
            public_key: "ed25519:key".into(),
            nonce,
            block_hash: "block".into(),
            signed_bytes: vec![1],
            token_contract: TOKEN.into(),
            claim_ids: vec![],
            amount: Some(Yocto(amount)),
            spend_day: Some(spend.day),
            gas_per_action: None,
            action_count: None,
        };
        insert_tx(c, &tx).await?;
        if !reserve_spend(c, TOKEN, spend.day, Yocto(amount), Some(Yocto(cap))).await? {
            // As prepare does: a refused reservation keeps nothing of the batch.
            return Err(StoreError::Corrupt("refused".into()));
        }
        Ok::<_, StoreError>(())
    })
    .await
    .is_ok()
}

async fn spent(conn: &mut AsyncPgConnection) -> u128 {
    spent_today(conn, TOKEN).await.unwrap().0
}

#[tokio::test]
async fn reservations_stay_within_the_cap_and_come_back_once_when_a_transaction_paid_nothing() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    assert!(reserve_tx(&mut conn, "a", 1, 60, 100).await);
    assert!(!reserve_tx(&mut conn, "b", 2, 41, 100).await, "cap passed");
    assert!(
        get_tx(&mut conn, "b").await.unwrap().is_none(),
        "refused batch kept"
    );
    assert!(reserve_tx(&mut conn, "c", 3, 40, 100).await);
    assert_eq!(spent(&mut conn).await, 100);
    let s = conn
        .transaction(async |c| lock_spend(c, TOKEN, None).await)
        .await
        .unwrap();
    assert_eq!((s.reserved_today, s.in_flight), (Yocto(100), Yocto(100)));

    // Dead: released, once.
    bury(&mut conn, "a", "test").await.unwrap();
    bury(&mut conn, "a", "test").await.unwrap();
    assert_eq!(spent(&mut conn).await, 40);
    // Succeeded: kept; and no longer in flight.
    let c = get_tx(&mut conn, "c").await.unwrap().unwrap();
    settle(&mut conn, &c, Settlement::Success).await.unwrap();
    assert_eq!(spent(&mut conn).await, 40);
    let s = conn
        .transaction(async |c| lock_spend(c, TOKEN, None).await)
        .await
        .unwrap();
    assert_eq!(s.in_flight, Yocto(0));
    // ... unless the balance was read before it succeeded (the node may not show it yet).
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    let s = conn
        .transaction(async |c| lock_spend(c, TOKEN, Some(before)).await)
        .await
        .unwrap();
    assert_eq!(s.in_flight, Yocto(40));

    // A failed receipt: released, once, even when the block is replayed.
    assert!(reserve_tx(&mut conn, "d", 4, 60, 100).await);
    let d = get_tx(&mut conn, "d").await.unwrap().unwrap();
    settle(&mut conn, &d, Settlement::Failure("boom"))
        .await
        .unwrap();
    settle(&mut conn, &d, Settlement::Failure("boom"))
        .await
        .unwrap();
    assert_eq!(spent(&mut conn).await, 40);
}

#[tokio::test]
async fn a_second_reserver_waits_for_the_first_and_sees_its_reservation() {
    let db = TestDb::new().await;
    let mut first = db.conn().await;
    let mut second = db.conn().await;
    let mut observer = db.conn().await;
    let (locked_tx, locked) = tokio::sync::oneshot::channel::<()>();
    let (commit_tx, commit) = tokio::sync::oneshot::channel::<()>();
    // The first lane reserves 70 of 100 and holds its DB transaction open until told to commit.
    let a = tokio::spawn(async move {
        first
            .transaction(async |c| {
                let spend = lock_spend(c, TOKEN, None).await?;
                assert!(reserve_spend(c, TOKEN, spend.day, Yocto(70), Some(Yocto(100))).await?);
                let _ = locked_tx.send(());
                let _ = commit.await;
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
    });
    locked.await.unwrap();
    // The second asks for the lock meanwhile: it must wait, then see the 70.
    let b = tokio::spawn(async move {
        second
            .transaction(async |c| {
                let spend = lock_spend(c, TOKEN, None).await?;
                let fits = reserve_spend(c, TOKEN, spend.day, Yocto(70), Some(Yocto(100))).await?;
                Ok::<_, StoreError>((spend.reserved_today, fits))
            })
            .await
            .unwrap()
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if waiting_advisory_locks(&mut observer).await == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second reserver never waited"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !b.is_finished(),
        "the second reserver did not wait for the lock"
    );
    commit_tx.send(()).unwrap();
    a.await.unwrap();
    let (seen, fits) = b.await.unwrap();
    assert_eq!(seen, Yocto(70));
    assert!(!fits, "both lanes spent the cap");
    assert_eq!(spent(&mut observer).await, 70);
}

async fn waiting_advisory_locks(conn: &mut AsyncPgConnection) -> i64 {
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let n: N = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .get_result(conn)
    .await
    .unwrap();
    n.n
}
