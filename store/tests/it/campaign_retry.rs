//! `retry-failed` of a campaign: only retryable failures go back, and never a claim a transaction may still
//! pay (or has paid). Tries to break `payouts_store::campaigns::retry`.

use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use payouts_store::campaigns::retry::{retry_failed, Retried};
use payouts_store::campaigns::{
    create_campaign, insert_campaign_claims, CampaignRow, CreateOutcome, NewCampaign,
};
use payouts_store::retry::{GAVE_UP_PREFIX, REGISTRATION_OFF_SUFFIX};
use payouts_store::testdb::TestDb;
use payouts_store::{AsyncPgConnection, CampaignKind, Yocto};

use crate::support::stored_tx;

async fn set(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql).execute(conn).await.unwrap();
}

async fn fail(
    conn: &mut AsyncPgConnection,
    id: i64,
    error: &str,
    kind: Option<&str>,
    tx: Option<&str>,
) {
    diesel::sql_query(
        "UPDATE claims SET status = 'failed', last_error = $1, retry_kind = $2, current_tx_hash = $3 WHERE id = $4",
    )
    .bind::<Text, _>(error)
    .bind::<diesel::sql_types::Nullable<Text>, _>(kind)
    .bind::<diesel::sql_types::Nullable<Text>, _>(tx)
    .bind::<BigInt, _>(id)
    .execute(conn)
    .await
    .unwrap();
}

async fn status_of(conn: &mut AsyncPgConnection, id: i64) -> String {
    #[derive(diesel::QueryableByName)]
    struct S {
        #[diesel(sql_type = Text)]
        status: String,
    }
    diesel::sql_query("SELECT status FROM claims WHERE id = $1")
        .bind::<BigInt, _>(id)
        .get_result::<S>(conn)
        .await
        .unwrap()
        .status
}

#[tokio::test]
async fn only_retryable_claims_with_no_live_transaction_go_back() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let new = NewCampaign {
        kind: CampaignKind::File,
        name: "retry".into(),
        token_contract: "token.devnet".into(),
        created_by: "ops".into(),
        file_digest: "b".repeat(64),
        approval_required: false,
        rows_total: 8,
        rows_invalid: 0,
        amount_total: Yocto(8),
    };
    let CreateOutcome::Created(campaign) = create_campaign(&mut conn, &new).await.unwrap() else {
        panic!("not created");
    };
    let rows: Vec<CampaignRow> = (1..=8)
        .map(|i| CampaignRow {
            row_key: format!("#{i}"),
            receiver_id: format!("r{i}.devnet"),
            amount: Yocto(1),
            memo: None,
        })
        .collect();
    insert_campaign_claims(&mut conn, &campaign, &rows)
        .await
        .unwrap();
    let ids: Vec<i64> = payouts_store::campaigns::rows::campaign_claims(
        &mut conn,
        campaign.id,
        payouts_store::ClaimStatus::Pending,
        None,
        100,
    )
    .await
    .unwrap()
    .iter()
    .map(|c| c.id.0)
    .collect();
    let gave_up = format!("{GAVE_UP_PREFIX}12 transient failures; last: not enough balance");
    let unregistered = format!("The account r6.devnet is not registered{REGISTRATION_OFF_SUFFIX}");

    // 1: gave up on the balance; its transaction's receipt failed → retryable and safe.
    stored_tx(&mut conn, "t1", 1, vec![ids[0]]).await;
    set(
        &mut conn,
        "UPDATE transactions SET status = 'failed' WHERE hash = 't1'",
    )
    .await;
    fail(&mut conn, ids[0], &gave_up, Some("balance"), Some("t1")).await;
    // 2: the same, but another stored transaction listing it is still `submitted` (could land).
    stored_tx(&mut conn, "t2", 2, vec![ids[1]]).await;
    stored_tx(&mut conn, "t2b", 3, vec![ids[1], ids[0] + 1000]).await;
    set(
        &mut conn,
        "UPDATE transactions SET status = 'failed' WHERE hash = 't2'",
    )
    .await;
    set(
        &mut conn,
        "UPDATE transactions SET status = 'submitted' WHERE hash = 't2b'",
    )
    .await;
    fail(&mut conn, ids[1], &gave_up, Some("balance"), Some("t2")).await;
    // 3: its current transaction is `included` (its receipt has not run yet).
    stored_tx(&mut conn, "t3", 4, vec![ids[2]]).await;
    set(
        &mut conn,
        "UPDATE transactions SET status = 'included' WHERE hash = 't3'",
    )
    .await;
    fail(&mut conn, ids[2], &gave_up, Some("balance"), Some("t3")).await;
    // 4: a `final` transaction lists it: it was paid.
    stored_tx(&mut conn, "t4", 5, vec![ids[3]]).await;
    set(
        &mut conn,
        "UPDATE transactions SET status = 'final' WHERE hash = 't4'",
    )
    .await;
    fail(&mut conn, ids[3], &gave_up, Some("balance"), None).await;
    // 5: a permanent contract error.
    fail(
        &mut conn,
        ids[4],
        "Smart contract panicked: The amount should be a positive number",
        None,
        None,
    )
    .await;
    // 6: not registered, the distributor does not register.
    fail(&mut conn, ids[5], &unregistered, Some("registration"), None).await;
    // 7: retryable, but a dropped transaction of it has an incident (it landed after all).
    stored_tx(&mut conn, "t7", 6, vec![ids[6]]).await;
    set(
        &mut conn,
        "UPDATE transactions SET status = 'dropped' WHERE hash = 't7'",
    )
    .await;
    set(
        &mut conn,
        "INSERT INTO incidents (kind, subject, tx_hash, details) VALUES ('dead_transaction_landed', 't7', 't7', '{}')",
    )
    .await;
    fail(&mut conn, ids[6], &gave_up, Some("unknown"), Some("t7")).await;
    // 8: still pending: not touched.

    let r = retry_failed(&mut conn, campaign.id, "treasurer", Some(false))
        .await
        .unwrap();
    assert_eq!(
        r,
        Retried {
            failed: 7,
            requeued: 1,
            not_retryable: 2,
            unsafe_to_retry: 4
        }
    );
    let statuses = [
        "pending", "failed", "failed", "failed", "failed", "failed", "failed", "pending",
    ];
    for (id, want) in ids.iter().zip(statuses) {
        assert_eq!(status_of(&mut conn, *id).await, want, "claim {id}");
    }

    // Registration on: the unregistered receiver's claim goes back too; nothing else changes.
    let r = retry_failed(&mut conn, campaign.id, "treasurer", Some(true))
        .await
        .unwrap();
    assert_eq!((r.failed, r.requeued, r.unsafe_to_retry), (6, 1, 4));
    assert_eq!(status_of(&mut conn, ids[5]).await, "pending");

    // Once the live transaction of claim 2 is proven dead, it may go back.
    set(
        &mut conn,
        "UPDATE transactions SET status = 'dropped' WHERE hash = 't2b'",
    )
    .await;
    let r = retry_failed(&mut conn, campaign.id, "treasurer", Some(true))
        .await
        .unwrap();
    assert_eq!(r.requeued, 1);
    assert_eq!(status_of(&mut conn, ids[1]).await, "pending");
}
