use payouts_store::claims::{get_claim, insert_claims, lock_pending, update_claims, ClaimUpdate};
use payouts_store::reconcile::{
    confirm_by_memo, open_txs_by_hash, open_txs_by_receipt, record_inclusion, settle, Settlement,
};
use payouts_store::testdb::TestDb;
use payouts_store::transactions::get_tx;
use payouts_store::{AsyncConnection, AsyncPgConnection, ClaimId, ClaimStatus, TxStatus, Yocto};

use crate::support::{event_claim, stored_tx};

/// `n` claims submitted in transaction `hash`.
async fn submitted_batch(
    conn: &mut AsyncPgConnection,
    hash: &str,
    first_log: u32,
    n: u32,
) -> Vec<ClaimId> {
    let rows: Vec<_> = (first_log..first_log + n)
        .map(|i| event_claim("r", i, "alice.devnet", 5))
        .collect();
    insert_claims(conn, &rows).await.unwrap();
    let ids: Vec<ClaimId> = conn
        .transaction(async |c| lock_pending(c, "token.devnet", i64::from(n)).await)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    stored_tx(
        conn,
        hash,
        i64::from(first_log) + 1,
        ids.iter().map(|i| i.0).collect(),
    )
    .await;
    update_claims(
        conn,
        &ids,
        ClaimStatus::Pending,
        ClaimUpdate::Submit { tx_hash: hash },
    )
    .await
    .unwrap();
    ids
}

#[tokio::test]
async fn success_confirms_every_claim_once() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let ids = submitted_batch(&mut conn, "tx1", 0, 3).await;
    assert_eq!(
        open_txs_by_hash(&mut conn, &["tx1".into(), "other".into()])
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(record_inclusion(&mut conn, "tx1", 10, "rc1").await.unwrap());
    assert!(
        !record_inclusion(&mut conn, "tx1", 10, "rc1").await.unwrap(),
        "replay re-included"
    );
    let txs = open_txs_by_receipt(&mut conn, &["rc1".into()])
        .await
        .unwrap();
    assert_eq!(txs.len(), 1);
    let done = settle(&mut conn, &txs[0], Settlement::Success)
        .await
        .unwrap();
    assert_eq!(done.confirmed, 3);
    // Replaying the block settles nothing again.
    assert_eq!(
        settle(&mut conn, &txs[0], Settlement::Success)
            .await
            .unwrap()
            .confirmed,
        0
    );
    assert!(open_txs_by_receipt(&mut conn, &["rc1".into()])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        get_tx(&mut conn, "tx1").await.unwrap().unwrap().status,
        TxStatus::Final
    );
    for id in ids {
        assert_eq!(
            get_claim(&mut conn, id).await.unwrap().unwrap().status,
            ClaimStatus::Confirmed
        );
    }
}

#[tokio::test]
async fn failed_batch_hands_claims_back_and_a_lone_claim_fails() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let batch = submitted_batch(&mut conn, "tx1", 0, 3).await;
    let tx = get_tx(&mut conn, "tx1").await.unwrap().unwrap();
    let msg = "Smart contract panicked: The account bob.devnet is not registered";
    let out = settle(&mut conn, &tx, Settlement::Failure(msg))
        .await
        .unwrap();
    assert_eq!(out.handed_back, 3);
    // Bisection: the first two (action order) go on together, the third alone.
    let mut groups = Vec::new();
    for id in &batch {
        let c = get_claim(&mut conn, *id).await.unwrap().unwrap();
        assert_eq!(
            (c.status, c.attempts, c.needs_isolation),
            (ClaimStatus::Pending, 1, true)
        );
        assert_eq!(c.last_error.as_deref(), Some(msg));
        groups.push(c.split_group.unwrap());
    }
    assert_eq!(groups, vec!["tx1/0", "tx1/0", "tx1/1"]);
    let tx = get_tx(&mut conn, "tx1").await.unwrap().unwrap();
    assert_eq!(
        (tx.status, tx.failure.as_deref()),
        (TxStatus::Failed, Some(msg))
    );

    // Alone, a permanent contract error is final (a transient one is not: see the next tests).
    let permanent = "Smart contract panicked: Sender and receiver should be different";
    let alone = submitted_batch(&mut conn, "tx2", 10, 1).await;
    let tx2 = get_tx(&mut conn, "tx2").await.unwrap().unwrap();
    assert_eq!(
        settle(&mut conn, &tx2, Settlement::Failure(permanent))
            .await
            .unwrap()
            .failed,
        1
    );
    let c = get_claim(&mut conn, alone[0]).await.unwrap().unwrap();
    assert_eq!(
        (c.status, c.last_error.as_deref()),
        (ClaimStatus::Failed, Some(permanent))
    );
}

/// Sets every waiting claim's `retry_at` into the past (the back-off is seconds; a test should not wait it).
async fn end_back_off(conn: &mut AsyncPgConnection) {
    use diesel_async::RunQueryDsl;
    diesel::sql_query(
        "UPDATE claims SET retry_at = now() - interval '1 second' WHERE retry_at IS NOT NULL",
    )
    .execute(conn)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_lone_transient_failure_waits_with_back_off_and_gives_up_after_the_bound() {
    use payouts_store::retry::MAX_RETRIES;
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let id = submitted_batch(&mut conn, "t0", 0, 1).await[0];
    let msg = "Smart contract panicked: The account doesn't have enough balance";
    let tx = get_tx(&mut conn, "t0").await.unwrap().unwrap();
    let out = settle(&mut conn, &tx, Settlement::Failure(msg))
        .await
        .unwrap();
    assert_eq!((out.handed_back, out.failed), (1, 0));
    let c = get_claim(&mut conn, id).await.unwrap().unwrap();
    assert_eq!(c.status, ClaimStatus::Pending);
    assert_eq!(
        (c.retries, c.attempts, c.retry_kind.as_deref()),
        (1, 1, Some("balance"))
    );
    let wait = c.retry_at.unwrap() - chrono::Utc::now();
    assert!(
        wait > chrono::Duration::zero() && wait <= chrono::Duration::seconds(1),
        "{wait}"
    );
    // Waiting: no batch takes it before retry_at.
    let locked = conn
        .transaction(async |c| lock_pending(c, "token.devnet", 10).await)
        .await
        .unwrap();
    assert!(locked.is_empty(), "{locked:?}");
    // Each further transient failure doubles the wait, until the bound fails it, saying why.
    for round in 2..=MAX_RETRIES {
        end_back_off(&mut conn).await;
        let hash = format!("t{round}");
        let locked = conn
            .transaction(async |c| lock_pending(c, "token.devnet", 10).await)
            .await
            .unwrap();
        assert_eq!(locked.len(), 1, "round {round}");
        stored_tx(&mut conn, &hash, 100 + i64::from(round), vec![id.0]).await;
        update_claims(
            &mut conn,
            &[id],
            ClaimStatus::Pending,
            ClaimUpdate::Submit { tx_hash: &hash },
        )
        .await
        .unwrap();
        let tx = get_tx(&mut conn, &hash).await.unwrap().unwrap();
        let out = settle(&mut conn, &tx, Settlement::Failure(msg))
            .await
            .unwrap();
        let c = get_claim(&mut conn, id).await.unwrap().unwrap();
        assert_eq!(c.retries, round);
        if round < MAX_RETRIES {
            assert_eq!((out.handed_back, c.status), (1, ClaimStatus::Pending));
            let wait = c.retry_at.unwrap() - chrono::Utc::now();
            let want = (1i64 << (round - 1)).min(600);
            assert!(
                wait <= chrono::Duration::seconds(want),
                "round {round}: {wait}"
            );
            assert!(
                wait > chrono::Duration::seconds(want - 2),
                "round {round}: {wait}"
            );
        } else {
            assert_eq!((out.failed, c.status), (1, ClaimStatus::Failed));
            let err = c.last_error.unwrap();
            assert!(
                err.contains("gave up after") && err.contains("enough balance"),
                "{err}"
            );
        }
    }
}

#[tokio::test]
async fn a_batch_wide_transient_failure_hands_the_whole_batch_back_without_bisecting() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let ids = submitted_batch(&mut conn, "tx1", 0, 4).await;
    let tx = get_tx(&mut conn, "tx1").await.unwrap().unwrap();
    let msg = "Smart contract panicked: Pausable: paused";
    let out = settle(&mut conn, &tx, Settlement::Failure(msg))
        .await
        .unwrap();
    assert_eq!((out.handed_back, out.failed), (4, 0));
    for id in ids {
        let c = get_claim(&mut conn, id).await.unwrap().unwrap();
        assert_eq!(c.status, ClaimStatus::Pending);
        assert_eq!(
            (c.needs_isolation, c.split_group),
            (false, None),
            "bisected"
        );
        assert_eq!(c.retry_kind.as_deref(), Some("paused"));
        assert!(c.retry_at.is_some());
    }
    // A receiver's error in a batch is bisected as before; alone it waits for a registration.
    let ids = submitted_batch(&mut conn, "tx2", 10, 1).await;
    let tx = get_tx(&mut conn, "tx2").await.unwrap().unwrap();
    let msg = "Smart contract panicked: The account bob.devnet is not registered";
    let out = settle(&mut conn, &tx, Settlement::Failure(msg))
        .await
        .unwrap();
    assert_eq!((out.handed_back, out.failed), (1, 0));
    let c = get_claim(&mut conn, ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (c.status, c.retry_kind.as_deref()),
        (ClaimStatus::Pending, Some("registration"))
    );
}

#[tokio::test]
async fn memo_confirms_only_an_exact_payment_by_our_signer() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let id = submitted_batch(&mut conn, "tx1", 0, 1).await[0];
    let token = "token.devnet";
    // Anyone can write our memo; wrong sender, receiver, amount or token confirm nothing.
    for (t, from, to, amount) in [
        (token, "mallory.devnet", "alice.devnet", 5),
        (token, "treasury.devnet", "bob.devnet", 5),
        (token, "treasury.devnet", "alice.devnet", 4),
        ("other.devnet", "treasury.devnet", "alice.devnet", 5),
    ] {
        assert!(!confirm_by_memo(&mut conn, id, t, from, to, Yocto(amount))
            .await
            .unwrap());
    }
    assert_eq!(
        get_claim(&mut conn, id).await.unwrap().unwrap().status,
        ClaimStatus::Submitted
    );
    assert!(confirm_by_memo(
        &mut conn,
        id,
        token,
        "treasury.devnet",
        "alice.devnet",
        Yocto(5)
    )
    .await
    .unwrap());
    assert!(!confirm_by_memo(
        &mut conn,
        id,
        token,
        "treasury.devnet",
        "alice.devnet",
        Yocto(5)
    )
    .await
    .unwrap());
    assert_eq!(
        get_claim(&mut conn, id).await.unwrap().unwrap().status,
        ClaimStatus::Confirmed
    );
    // The receipt outcome arriving afterwards finishes the transaction without touching the claim again.
    let tx = get_tx(&mut conn, "tx1").await.unwrap().unwrap();
    assert_eq!(
        settle(&mut conn, &tx, Settlement::Success)
            .await
            .unwrap()
            .confirmed,
        0
    );
    assert_eq!(
        get_tx(&mut conn, "tx1").await.unwrap().unwrap().status,
        TxStatus::Final
    );
}

#[tokio::test]
async fn many_memo_payments_confirm_in_one_statement_only_when_they_match() {
    use payouts_store::reconcile::{confirm_by_memos, MemoPayment};
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let ids = submitted_batch(&mut conn, "tx1", 0, 3).await;
    let pay = |id: ClaimId, from, amount| MemoPayment {
        claim_ids: vec![id],
        token: "token.devnet",
        from,
        to: "alice.devnet",
        amount: Yocto(amount),
    };
    let payments = [
        pay(ids[0], "treasury.devnet", 5),
        pay(ids[1], "treasury.devnet", 4), // wrong amount
        pay(ids[2], "mallory.devnet", 5),  // not our signer
        pay(ids[0], "treasury.devnet", 5), // repeated
    ];
    assert_eq!(confirm_by_memos(&mut conn, &payments).await.unwrap(), 1);
    let status = |c: Option<payouts_store::claims::Claim>| c.unwrap().status;
    assert_eq!(
        status(get_claim(&mut conn, ids[0]).await.unwrap()),
        ClaimStatus::Confirmed
    );
    assert_eq!(
        status(get_claim(&mut conn, ids[1]).await.unwrap()),
        ClaimStatus::Submitted
    );
    assert_eq!(
        status(get_claim(&mut conn, ids[2]).await.unwrap()),
        ClaimStatus::Submitted
    );
    assert_eq!(confirm_by_memos(&mut conn, &payments).await.unwrap(), 0);
}

#[tokio::test]
async fn a_merged_transfer_confirms_its_claims_all_together_or_not_at_all() {
    use payouts_store::reconcile::{confirm_by_memos, MemoPayment};
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    // Six claims of 5 to alice in one transaction: two merged transfers of three.
    let ids = submitted_batch(&mut conn, "tx1", 0, 6).await;
    payouts_store::transactions::record_transfers(&mut conn, "tx1", &[3, 3])
        .await
        .unwrap();
    let pay = |ids: &[ClaimId], from, amount| MemoPayment {
        claim_ids: ids.to_vec(),
        token: "token.devnet",
        from,
        to: "alice.devnet",
        amount: Yocto(amount),
    };
    let bad = [
        pay(&ids[..3], "treasury.devnet", 14), // not the sum
        pay(&ids[..3], "treasury.devnet", 16), // not the sum
        pay(&ids[..3], "mallory.devnet", 15),  // not our signer
        pay(&[ids[0], ClaimId(999)], "treasury.devnet", 10), // names a claim that is not ours
    ];
    assert_eq!(confirm_by_memos(&mut conn, &bad).await.unwrap(), 0);
    let status = |c: Option<payouts_store::claims::Claim>| c.unwrap().status;
    for id in &ids {
        assert_eq!(
            status(get_claim(&mut conn, *id).await.unwrap()),
            ClaimStatus::Submitted
        );
    }
    // The right sum confirms all three, and only those; a replay changes nothing.
    let good = [pay(&ids[..3], "treasury.devnet", 15)];
    assert_eq!(confirm_by_memos(&mut conn, &good).await.unwrap(), 3);
    assert_eq!(confirm_by_memos(&mut conn, &good).await.unwrap(), 0);
    for (i, id) in ids.iter().enumerate() {
        let want = if i < 3 {
            ClaimStatus::Confirmed
        } else {
            ClaimStatus::Submitted
        };
        assert_eq!(status(get_claim(&mut conn, *id).await.unwrap()), want);
    }
    // A memo naming a confirmed claim with pending ones cannot confirm the rest.
    let mixed = [pay(&[ids[2], ids[3], ids[4]], "treasury.devnet", 15)];
    assert_eq!(confirm_by_memos(&mut conn, &mixed).await.unwrap(), 0);
}

#[tokio::test]
async fn a_failed_batch_of_merged_transfers_is_bisected_by_whole_transfers() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let ids = submitted_batch(&mut conn, "tx1", 0, 6).await;
    // Transfers of 1, 3 and 2 claims: the halves are [1 + 3] and [2], never a transfer cut in two.
    payouts_store::transactions::record_transfers(&mut conn, "tx1", &[1, 3, 2])
        .await
        .unwrap();
    let tx = get_tx(&mut conn, "tx1").await.unwrap().unwrap();
    assert_eq!(tx.transfers().len(), 3);
    let s = settle(
        &mut conn,
        &tx,
        Settlement::Failure("Smart contract panicked: boom"),
    )
    .await
    .unwrap();
    assert_eq!(s.handed_back, 6);
    let mut groups = Vec::new();
    for id in &ids {
        let c = get_claim(&mut conn, *id).await.unwrap().unwrap();
        assert_eq!(c.status, ClaimStatus::Pending);
        assert!(c.needs_isolation);
        groups.push(c.split_group.unwrap());
    }
    assert_eq!(
        groups[..4]
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        1
    );
    assert_eq!(groups[4], groups[5]);
    assert_ne!(groups[0], groups[4]);
}

#[tokio::test]
async fn a_lone_merged_transfer_that_failed_for_good_is_retried_claim_by_claim() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let ids = submitted_batch(&mut conn, "tx1", 0, 3).await;
    payouts_store::transactions::record_transfers(&mut conn, "tx1", &[3])
        .await
        .unwrap();
    let tx = get_tx(&mut conn, "tx1").await.unwrap().unwrap();
    let s = settle(
        &mut conn,
        &tx,
        Settlement::Failure("Smart contract panicked: Balance overflow"),
    )
    .await
    .unwrap();
    // Nothing failed for good yet: each claim gets its own verdict in a group of one.
    assert_eq!((s.handed_back, s.failed), (3, 0));
    let mut groups = std::collections::HashSet::new();
    for id in &ids {
        let c = get_claim(&mut conn, *id).await.unwrap().unwrap();
        assert_eq!(c.status, ClaimStatus::Pending);
        assert!(groups.insert(c.split_group.unwrap()));
    }
}
