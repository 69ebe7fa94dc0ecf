//! `key_transactions`: every transaction on chain signed by one of the treasury's keys (the keys in
//! `access_keys`), ours or not. The indexer writes them in the same DB transaction as the cursor move past
//! their block, so the table is exactly as complete as the indexed chain; replaying a range inserts nothing
//! twice (the hash is the key). It is what ties a conversion receipt to the transaction that made it even
//! when the store's own row says something else (a `dropped` transaction that landed, one settled by a `tx`
//! look-up before the stream saw it), and what [`crate::incidents`] reads.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::error::Result;
use crate::schema::{access_keys, key_transactions};

/// A transaction signed by a treasury key, as the indexer saw it in a chunk.
#[derive(Debug, Clone, PartialEq, Eq, Insertable, Queryable, Selectable)]
#[diesel(table_name = key_transactions, check_for_backend(diesel::pg::Pg))]
pub struct KeyTx {
    /// Transaction hash (base58).
    pub hash: String,
    /// Signer account.
    pub signer_id: String,
    /// Signing key (`ed25519:…`).
    pub public_key: String,
    /// Its nonce.
    pub nonce: i64,
    /// Block that included it.
    pub block_height: i64,
    /// That block's hash.
    pub block_hash: String,
    /// The receipt it converted into (`None` when conversion failed).
    pub receipt_id: Option<String>,
    /// Why conversion failed, when it did.
    pub failure: Option<String>,
}

/// The treasury's keys, `(account_id, public_key)`: what the indexer matches chunk transactions against.
pub async fn treasury_keys(conn: &mut AsyncPgConnection) -> Result<Vec<(String, String)>> {
    Ok(access_keys::table
        .select((access_keys::account_id, access_keys::public_key))
        .load(conn)
        .await?)
}

/// Records `txs` (a transaction already recorded is left alone). Returns how many were new.
pub async fn record_key_txs(conn: &mut AsyncPgConnection, txs: &[KeyTx]) -> Result<usize> {
    let mut n = 0;
    // Postgres takes at most 65,535 bind parameters per statement (8 a row).
    for chunk in txs.chunks(4_000) {
        n += diesel::insert_into(key_transactions::table)
            .values(chunk)
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
    }
    Ok(n)
}

/// Every recorded transaction of key `public_key`, lowest nonce first.
pub async fn key_txs_of(conn: &mut AsyncPgConnection, public_key: &str) -> Result<Vec<KeyTx>> {
    Ok(key_transactions::table
        .filter(key_transactions::public_key.eq(public_key))
        .order(key_transactions::nonce.asc())
        .select(KeyTx::as_select())
        .load(conn)
        .await?)
}
