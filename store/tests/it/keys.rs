use payouts_store::keys::{
    lease_keys, list_keys, register_keys, release_leases, renew_leases, sync_nonce, use_nonce,
};
use payouts_store::testdb::TestDb;
use payouts_store::StoreError;

const ACCOUNT: &str = "treasury.devnet";

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("ed25519:key{i}")).collect()
}

#[tokio::test]
async fn two_processes_lease_disjoint_keys_and_expired_leases_free_up() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    assert_eq!(
        register_keys(&mut conn, ACCOUNT, &keys(8)).await.unwrap(),
        8
    );
    assert_eq!(
        register_keys(&mut conn, ACCOUNT, &keys(8)).await.unwrap(),
        0
    );

    let a = lease_keys(&mut conn, ACCOUNT, None, "proc-a", 5, 60_000)
        .await
        .unwrap();
    let b = lease_keys(&mut conn, ACCOUNT, None, "proc-b", 5, 60_000)
        .await
        .unwrap();
    assert_eq!((a.len(), b.len()), (5, 3));
    assert!(a
        .iter()
        .all(|k| !b.iter().any(|o| o.public_key == k.public_key)));
    // Leasing again renews one's own keys and takes nothing from the other.
    assert_eq!(
        lease_keys(&mut conn, ACCOUNT, None, "proc-a", 8, 60_000)
            .await
            .unwrap()
            .len(),
        5
    );

    // proc-b "crashes": its lease expires and proc-a can take its keys.
    assert_eq!(
        lease_keys(&mut conn, ACCOUNT, None, "proc-b", 8, 1)
            .await
            .unwrap()
            .len(),
        3
    );
    wait_until_expired(&mut conn, "proc-b").await;
    assert!(
        renew_leases(&mut conn, "proc-b", 60_000)
            .await
            .unwrap()
            .is_empty(),
        "expired lease renewed"
    );
    assert_eq!(
        lease_keys(&mut conn, ACCOUNT, None, "proc-a", 8, 60_000)
            .await
            .unwrap()
            .len(),
        8
    );

    assert_eq!(release_leases(&mut conn, "proc-a").await.unwrap(), 8);
    // A process leases only the keys whose secret it holds.
    let held = vec![keys(8)[6].clone()];
    let c = lease_keys(&mut conn, ACCOUNT, Some(&held), "proc-c", 8, 60_000)
        .await
        .unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].public_key, held[0]);
    assert_eq!(release_leases(&mut conn, "proc-c").await.unwrap(), 1);
    assert!(list_keys(&mut conn)
        .await
        .unwrap()
        .iter()
        .all(|k| k.lease_owner.is_none()));
}

async fn wait_until_expired(conn: &mut payouts_store::AsyncPgConnection, owner: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let held = list_keys(conn)
            .await
            .unwrap()
            .into_iter()
            .filter(|k| k.lease_owner.as_deref() == Some(owner))
            .all(|k| k.lease_expires_at.is_some_and(|t| t < chrono::Utc::now()));
        if held {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "lease never expired");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn nonces_only_move_forward_and_only_for_the_lease_holder() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    register_keys(&mut conn, ACCOUNT, &keys(1)).await.unwrap();
    let key = &keys(1)[0];
    lease_keys(&mut conn, ACCOUNT, None, "proc-a", 1, 60_000)
        .await
        .unwrap();
    use_nonce(&mut conn, key, "proc-a", 10).await.unwrap();
    use_nonce(&mut conn, key, "proc-a", 11).await.unwrap();
    for (owner, nonce) in [("proc-a", 11), ("proc-a", 5), ("proc-b", 12)] {
        let err = use_nonce(&mut conn, key, owner, nonce).await.unwrap_err();
        assert!(
            matches!(err, StoreError::LeaseLost { .. }),
            "{owner} {nonce}: {err}"
        );
    }
    // A resync takes the chain's word, even backwards.
    sync_nonce(&mut conn, key, "proc-a", 7).await.unwrap();
    assert_eq!(list_keys(&mut conn).await.unwrap()[0].last_nonce, Some(7));
    release_leases(&mut conn, "proc-a").await.unwrap();
    assert!(
        use_nonce(&mut conn, key, "proc-a", 8).await.is_err(),
        "used a released key"
    );
}
