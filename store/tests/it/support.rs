use payouts_store::claims::{EventKey, NewClaim};
use payouts_store::transactions::{insert_tx, NewTx};
use payouts_store::{AsyncPgConnection, Yocto};

pub fn event_claim(receipt: &str, log_index: u32, receiver: &str, amount: u128) -> NewClaim {
    let key = EventKey {
        rule: "claims".into(),
        receipt_id: receipt.into(),
        log_index,
        event_index: 0,
        block_height: 7,
    };
    NewClaim::event(key, "token.devnet", receiver, Yocto(amount), None)
}

pub async fn stored_tx(conn: &mut AsyncPgConnection, hash: &str, nonce: i64, claim_ids: Vec<i64>) {
    let tx = NewTx {
        hash: hash.into(),
        signer_id: "treasury.devnet".into(),
        public_key: "ed25519:key".into(),
        nonce,
        block_hash: "block".into(),
        signed_bytes: vec![1, 2, 3],
        token_contract: "token.devnet".into(),
        claim_ids,
        amount: None,
        spend_day: None,
        gas_per_action: None,
        action_count: None,
    };
    insert_tx(conn, &tx).await.unwrap();
}
