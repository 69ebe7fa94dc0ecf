use near_crypto::{KeyType, SecretKey};
use near_primitives::hash::CryptoHash;
use payouts_distributor::prepare::{prepare_batch, LaneState, PrepareError};
use payouts_distributor::{Limits, TreasuryKey};
use payouts_store::claims::{get_claim, insert_claims, NewClaim};
use payouts_store::keys::{lease_keys, list_keys, register_keys, release_leases};
use payouts_store::testdb::TestDb;
use payouts_store::transactions::get_tx;
use payouts_store::{AsyncPgConnection, ClaimId, ClaimStatus, StoreError, TxStatus, Yocto};

const TGAS: u64 = 1_000_000_000_000;

fn key() -> TreasuryKey {
    let secret = SecretKey::from_seed(KeyType::ED25519, "prepare-test");
    let json = serde_json::json!({
        "account_id": "treasury.devnet",
        "public_key": secret.public_key().to_string(),
        "private_key": secret.to_string(),
    });
    TreasuryKey::from_json(&json.to_string()).unwrap()
}

fn limits(per_tx: usize) -> Limits {
    Limits {
        max_transfers_per_tx: per_tx,
        gas_per_transfer: 3 * TGAS,
        max_tx_gas: 300 * TGAS,
    }
}

async fn setup(
    conn: &mut AsyncPgConnection,
    key: &TreasuryKey,
    receivers: &[&str],
) -> Vec<ClaimId> {
    let pk = key.public_key.to_string();
    register_keys(conn, "treasury.devnet", std::slice::from_ref(&pk))
        .await
        .unwrap();
    assert_eq!(
        lease_keys(conn, "treasury.devnet", None, "proc-a", 8, 60_000)
            .await
            .unwrap()
            .len(),
        1
    );
    let rows: Vec<NewClaim> = receivers
        .iter()
        .enumerate()
        .map(|(i, r)| {
            NewClaim::manual(
                &format!("k{i}"),
                "d",
                "token.devnet",
                r,
                Yocto(10 + i as u128),
                None,
            )
        })
        .collect();
    insert_claims(conn, &rows).await.unwrap();
    (1..=receivers.len() as i64).map(ClaimId).collect()
}

fn lane(nonce: u64) -> LaneState {
    LaneState {
        nonce,
        block_hash: CryptoHash::hash_bytes(b"recent block"),
    }
}

#[tokio::test]
async fn a_batch_is_stored_with_its_claims_and_nonce_before_anything_is_sent() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let key = key();
    let ids = setup(&mut conn, &key, &["a.devnet", "b.devnet", "c.devnet"]).await;

    let prepared = prepare_batch(
        &mut conn,
        "proc-a",
        &key,
        "token.devnet",
        lane(41),
        &limits(2),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(prepared.claim_ids, ids[..2]);
    let stored = get_tx(&mut conn, &prepared.batch.hash.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.status, stored.nonce), (TxStatus::Signed, 41));
    assert_eq!(stored.signed_bytes, prepared.batch.bytes);
    assert_eq!(stored.claim_ids, vec![ids[0].0, ids[1].0]);
    let decoded: near_primitives::transaction::SignedTransaction =
        borsh::from_slice(&stored.signed_bytes).unwrap();
    assert_eq!(decoded.get_hash(), prepared.batch.hash);
    for id in &ids[..2] {
        let c = get_claim(&mut conn, *id).await.unwrap().unwrap();
        assert_eq!(
            (c.status, c.current_tx_hash.as_deref()),
            (ClaimStatus::Submitted, Some(stored.hash.as_str()))
        );
    }
    assert_eq!(
        get_claim(&mut conn, ids[2]).await.unwrap().unwrap().status,
        ClaimStatus::Pending
    );
    assert_eq!(list_keys(&mut conn).await.unwrap()[0].last_nonce, Some(41));

    // Reusing the nonce is refused and changes nothing: the third claim stays pending, no new row.
    let err = prepare_batch(
        &mut conn,
        "proc-a",
        &key,
        "token.devnet",
        lane(41),
        &limits(2),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PrepareError::Store(_)), "{err}");
    assert_eq!(
        get_claim(&mut conn, ids[2]).await.unwrap().unwrap().status,
        ClaimStatus::Pending
    );

    // Next nonce: the rest goes; then nothing is left.
    let next = prepare_batch(
        &mut conn,
        "proc-a",
        &key,
        "token.devnet",
        lane(42),
        &limits(2),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(next.claim_ids, vec![ids[2]]);
    assert!(prepare_batch(
        &mut conn,
        "proc-a",
        &key,
        "token.devnet",
        lane(43),
        &limits(2)
    )
    .await
    .unwrap()
    .is_none());
}

#[tokio::test]
async fn a_lost_lease_stores_and_sends_nothing() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let key = key();
    let ids = setup(&mut conn, &key, &["a.devnet"]).await;
    release_leases(&mut conn, "proc-a").await.unwrap();
    let err = prepare_batch(
        &mut conn,
        "proc-a",
        &key,
        "token.devnet",
        lane(1),
        &limits(10),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, PrepareError::Store(StoreError::LeaseLost { .. })),
        "{err}"
    );
    let c = get_claim(&mut conn, ids[0]).await.unwrap().unwrap();
    assert_eq!((c.status, c.current_tx_hash), (ClaimStatus::Pending, None));
}

#[tokio::test]
async fn unpayable_claims_fail_and_do_not_block_the_rest() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let key = key();
    let ids = setup(&mut conn, &key, &["Not An Account", "b.devnet"]).await;
    let prepared = prepare_batch(
        &mut conn,
        "proc-a",
        &key,
        "token.devnet",
        lane(1),
        &limits(10),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(prepared.claim_ids, vec![ids[1]]);
    let bad = get_claim(&mut conn, ids[0]).await.unwrap().unwrap();
    assert_eq!(bad.status, ClaimStatus::Failed);
    assert!(bad.last_error.unwrap().contains("not a valid account id"));
}
