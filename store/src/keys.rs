//! The treasury key pool: each access key is one nonce lane, leased to one distributor process at a time
//! (with an expiry it must keep renewing), so several processes on several machines share one treasury
//! without nonce clashes. A crashed holder's keys free up when its lease expires.
//!
//! Every write that uses a key is fenced on the lease: it only happens while the caller still holds it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::schema::access_keys;

/// One key of the pool.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, QueryableByName, Serialize)]
#[diesel(table_name = access_keys, check_for_backend(diesel::pg::Pg))]
pub struct PoolKey {
    /// `ed25519:…`
    pub public_key: String,
    /// The treasury account it belongs to.
    pub account_id: String,
    /// Highest nonce we used (or read from the chain); `None` until first synced.
    pub last_nonce: Option<i64>,
    /// Process holding the lease.
    pub lease_owner: Option<String>,
    /// When the lease lapses unless renewed.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Row creation.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Adds keys of `account` to the pool (existing ones are left as they are). Returns how many were new.
pub async fn register_keys(
    conn: &mut AsyncPgConnection,
    account: &str,
    public_keys: &[String],
) -> Result<usize> {
    let rows: Vec<_> = public_keys
        .iter()
        .map(|pk| {
            (
                access_keys::public_key.eq(pk),
                access_keys::account_id.eq(account),
            )
        })
        .collect();
    Ok(diesel::insert_into(access_keys::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?)
}

/// Leases up to `max` keys of `account` to `owner` for `ttl_ms`: free keys, expired leases, and the owner's own
/// (renewed). Concurrent callers get disjoint keys. Only keys in `held` are candidates (`None`: any key of the
/// account): a process leases only keys whose secret it has.
pub async fn lease_keys(
    conn: &mut AsyncPgConnection,
    account: &str,
    held: Option<&[String]>,
    owner: &str,
    max: i64,
    ttl_ms: i64,
) -> Result<Vec<PoolKey>> {
    Ok(diesel::sql_query(
        "UPDATE access_keys SET lease_owner = $2, \
                lease_expires_at = now() + make_interval(secs => $4::float8 / 1000), updated_at = now() \
         WHERE public_key IN ( \
             SELECT public_key FROM access_keys \
             WHERE account_id = $1 AND (lease_owner IS NULL OR lease_owner = $2 OR lease_expires_at < now()) \
               AND ($5::text[] IS NULL OR public_key = ANY($5)) \
             ORDER BY public_key LIMIT $3 FOR UPDATE SKIP LOCKED) \
         RETURNING *",
    )
    .bind::<Text, _>(account)
    .bind::<Text, _>(owner)
    .bind::<BigInt, _>(max)
    .bind::<BigInt, _>(ttl_ms)
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Array<Text>>, _>(held)
    .load(conn)
    .await?)
}

/// Extends every unexpired lease of `owner`; returns the keys still held (a key whose lease lapsed is lost).
pub async fn renew_leases(
    conn: &mut AsyncPgConnection,
    owner: &str,
    ttl_ms: i64,
) -> Result<Vec<String>> {
    Ok(diesel::sql_query(
        "UPDATE access_keys SET lease_expires_at = now() + make_interval(secs => $2::float8 / 1000), updated_at = now() \
         WHERE lease_owner = $1 AND lease_expires_at > now() RETURNING *",
    )
    .bind::<Text, _>(owner)
    .bind::<BigInt, _>(ttl_ms)
    .load::<PoolKey>(conn)
    .await?
    .into_iter()
    .map(|k| k.public_key)
    .collect())
}

/// Gives back every lease of `owner` (graceful shutdown).
pub async fn release_leases(conn: &mut AsyncPgConnection, owner: &str) -> Result<usize> {
    Ok(
        diesel::update(access_keys::table.filter(access_keys::lease_owner.eq(owner)))
            .set((
                access_keys::lease_owner.eq(None::<String>),
                access_keys::lease_expires_at.eq(None::<DateTime<Utc>>),
                access_keys::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?,
    )
}

/// Records `nonce` as the key's last used nonce, only while `owner` holds an unexpired lease and only forwards.
/// Run it in the same DB transaction that stores the transaction signed with that nonce: if the lease was
/// lost, [`StoreError::LeaseLost`] aborts the whole transaction and nothing gets broadcast.
pub async fn use_nonce(
    conn: &mut AsyncPgConnection,
    public_key: &str,
    owner: &str,
    nonce: i64,
) -> Result<()> {
    let moved = diesel::update(
        access_keys::table
            .find(public_key)
            .filter(access_keys::lease_owner.eq(owner))
            .filter(access_keys::lease_expires_at.gt(diesel::dsl::now))
            .filter(
                access_keys::last_nonce
                    .is_null()
                    .or(access_keys::last_nonce.lt(nonce)),
            ),
    )
    .set((
        access_keys::last_nonce.eq(nonce),
        access_keys::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    if moved == 1 {
        Ok(())
    } else {
        Err(StoreError::LeaseLost {
            public_key: public_key.to_string(),
            owner: owner.to_string(),
        })
    }
}

/// Sets the key's nonce to what the chain says (after a resync), while `owner` holds it. May move backwards:
/// the chain is the truth.
pub async fn sync_nonce(
    conn: &mut AsyncPgConnection,
    public_key: &str,
    owner: &str,
    chain_nonce: i64,
) -> Result<()> {
    let moved = diesel::update(
        access_keys::table
            .find(public_key)
            .filter(access_keys::lease_owner.eq(owner))
            .filter(access_keys::lease_expires_at.gt(diesel::dsl::now)),
    )
    .set((
        access_keys::last_nonce.eq(chain_nonce),
        access_keys::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    if moved == 1 {
        Ok(())
    } else {
        Err(StoreError::LeaseLost {
            public_key: public_key.to_string(),
            owner: owner.to_string(),
        })
    }
}

/// Every key of the pool (for status pages).
pub async fn list_keys(conn: &mut AsyncPgConnection) -> Result<Vec<PoolKey>> {
    Ok(access_keys::table
        .order(access_keys::public_key.asc())
        .select(PoolKey::as_select())
        .load(conn)
        .await?)
}
