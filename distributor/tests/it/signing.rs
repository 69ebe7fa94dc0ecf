use std::time::Duration;

use near_jsonrpc_client::{methods, JsonRpcClient};
use near_jsonrpc_primitives::types::query::QueryResponseKind;
use near_primitives::types::{BlockReference, Finality};
use near_primitives::views::{FinalExecutionStatus, QueryRequest, TxExecutionStatus};
use payouts_devnet::Devnet;
use payouts_distributor::{build_batch, plan, Limits, TreasuryKey};
use payouts_store::claims::{insert_claims, lock_pending, NewClaim};
use payouts_store::memo::claim_id_from_memo;
use payouts_store::testdb::TestDb;
use payouts_store::{AsyncConnection, Yocto};

const TGAS: u64 = 1_000_000_000_000;

#[tokio::test]
async fn a_signed_batch_pays_every_claim_exactly() {
    let (devnet, _keys) = Devnet::start_for_tests(|_| {}).await.unwrap();
    let client = JsonRpcClient::connect(devnet.rpc_url());
    // The key file as near-cli wrote it: the same path an operator configures.
    let key = TreasuryKey::from_file(&devnet.treasury_key_file()).unwrap();

    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    // 100 registered (even-numbered) users, distinct amounts.
    let rows: Vec<NewClaim> = (0..100u128)
        .map(|i| {
            let user = format!("user-{}.devnet", 2 * i);
            NewClaim::manual(
                &format!("k{i}"),
                "d",
                "token.devnet",
                &user,
                Yocto(1_000 + i),
                Some("bonus".into()),
            )
        })
        .collect();
    insert_claims(&mut conn, &rows).await.unwrap();
    let claims = conn
        .transaction(async |c| lock_pending(c, "token.devnet", 1000).await)
        .await
        .unwrap();
    let limits = Limits {
        max_transfers_per_tx: 100,
        gas_per_transfer: 3 * TGAS,
        max_tx_gas: 300 * TGAS,
    };
    let (batches, bad) = plan(claims, &limits);
    assert!(bad.is_empty());
    assert_eq!(batches.len(), 1);
    let batch = &batches[0];

    let before: Vec<u128> = batch
        .iter()
        .map(|c| devnet.ft_balance(&c.receiver_id.parse().unwrap()).unwrap())
        .collect();
    let key_view = methods::query::RpcQueryRequest {
        block_reference: BlockReference::Finality(Finality::Final),
        request: QueryRequest::ViewAccessKey {
            account_id: key.account_id.clone(),
            public_key: key.public_key.clone(),
        },
    };
    let view = client.call(key_view).await.unwrap();
    let QueryResponseKind::AccessKey(access_key) = view.kind else {
        panic!("unexpected {:?}", view.kind)
    };
    let (nonce, block_hash) = (access_key.nonce + 1, view.block_hash);
    let signed = build_batch(&key, "token.devnet", batch, nonce, block_hash, 3 * TGAS).unwrap();
    // The persisted bytes are the transaction: they decode back to the same hash.
    let decoded: near_primitives::transaction::SignedTransaction =
        borsh::from_slice(&signed.bytes).unwrap();
    assert_eq!(decoded.get_hash(), signed.hash);

    let send = methods::send_tx::RpcSendTransactionRequest {
        signed_transaction: signed.signed.clone(),
        wait_until: TxExecutionStatus::Final,
    };
    let outcome = tokio::time::timeout(Duration::from_secs(30), client.call(send))
        .await
        .unwrap()
        .unwrap()
        .final_execution_outcome
        .unwrap()
        .into_outcome();
    assert!(
        matches!(outcome.status, FinalExecutionStatus::SuccessValue(_)),
        "{:?}",
        outcome.status
    );
    assert_eq!(outcome.transaction.hash, signed.hash);

    for (c, b) in batch.iter().zip(before) {
        let after = devnet.ft_balance(&c.receiver_id.parse().unwrap()).unwrap();
        assert_eq!(after - b, c.amount.0, "{}", c.receiver_id);
    }
    // Exactly one ft_transfer event per claim memo, carrying the claim's own memo too.
    let transfers = devnet.ft_transfers();
    for c in batch {
        let matching: Vec<_> = transfers
            .iter()
            .filter(|t| t.event.memo.as_deref().and_then(claim_id_from_memo) == Some(c.id))
            .collect();
        assert_eq!(matching.len(), 1, "claim {}", c.id);
        assert!(matching[0]
            .event
            .memo
            .as_deref()
            .unwrap()
            .ends_with(" bonus"));
    }
    devnet.shutdown().await;
}
