//! The HTTP API's read queries: liveness ping, claim counts per token and status, confirmed-transfer rates,
//! and the keyset-paginated claim listing. The API's only write is [`crate::claims::insert_manual_claim`].

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::claims::Claim;
use crate::error::Result;
use crate::schema::claims;
use crate::types::{ClaimId, ClaimStatus};

/// Proves the connection works (`SELECT 1`).
pub async fn ping(conn: &mut AsyncPgConnection) -> Result<()> {
    diesel::sql_query("SELECT 1").execute(conn).await?;
    Ok(())
}

/// Claims of one token in one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenStatusCount {
    /// NEP-141 contract.
    pub token_contract: String,
    /// Lifecycle state.
    pub status: ClaimStatus,
    /// Number of claims.
    pub count: i64,
}

/// Counts claims per token contract and status (a full scan: callers cache it).
pub async fn count_by_token_and_status(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<TokenStatusCount>> {
    let rows: Vec<(String, ClaimStatus, i64)> = claims::table
        .group_by((claims::token_contract, claims::status))
        .select((
            claims::token_contract,
            claims::status,
            diesel::dsl::count_star(),
        ))
        .order((claims::token_contract.asc(), claims::status.asc()))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(token_contract, status, count)| TokenStatusCount {
            token_contract,
            status,
            count,
        })
        .collect())
}

/// Confirmations in the last `window_secs` seconds, bucketed by age.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ConfirmedByAge {
    /// Width of one bucket, seconds.
    pub bucket_secs: u32,
    /// `counts[i]`: claims confirmed between `(i + 1) * bucket_secs` and `i * bucket_secs` seconds ago
    /// (index 0 is the most recent bucket). Always `window_secs / bucket_secs` long.
    pub counts: Vec<i64>,
}

impl ConfirmedByAge {
    /// Confirmations in the last `secs` seconds (rounded down to whole buckets).
    pub fn within(&self, secs: u32) -> i64 {
        let n = (secs / self.bucket_secs.max(1)) as usize;
        self.counts.iter().take(n).sum()
    }
}

/// Claims confirmed in the last `window_secs` seconds, in buckets of `bucket_secs` aligned on the database's
/// `now()`. A range scan of the partial index `claims_confirmed_at`.
pub async fn confirmed_by_age(
    conn: &mut AsyncPgConnection,
    window_secs: u32,
    bucket_secs: u32,
) -> Result<ConfirmedByAge> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        age_bucket: i64,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let bucket_secs = bucket_secs.max(1);
    let buckets = (window_secs / bucket_secs).max(1) as usize;
    let window = f64::from(bucket_secs) * buckets as f64;
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT GREATEST(0, floor(extract(epoch FROM (now() - confirmed_at))::float8 / $2))::int8 AS age_bucket, \
                count(*) AS n \
         FROM claims WHERE confirmed_at IS NOT NULL AND confirmed_at > now() - make_interval(secs => $1) \
         GROUP BY 1",
    )
    .bind::<Double, _>(window)
    .bind::<Double, _>(f64::from(bucket_secs))
    .load(conn)
    .await?;
    let mut counts = vec![0i64; buckets];
    for row in rows {
        if let Some(slot) = usize::try_from(row.age_bucket)
            .ok()
            .and_then(|i| counts.get_mut(i))
        {
            *slot += row.n;
        }
    }
    Ok(ConfirmedByAge {
        bucket_secs,
        counts,
    })
}

/// Which claims to list; every filter is optional. Newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimFilter {
    /// Only this status.
    pub status: Option<ClaimStatus>,
    /// Only this receiver.
    pub receiver_id: Option<String>,
    /// Only this token contract.
    pub token_contract: Option<String>,
    /// Only claims of this campaign.
    pub campaign_id: Option<i64>,
    /// Keyset cursor: only claims with a smaller id (the last id of the previous page).
    pub before: Option<ClaimId>,
    /// Page size.
    pub limit: i64,
}

/// One page of claims, newest (highest id) first. Uses `claims_status_id` / `claims_receiver` when those
/// filters are given.
pub async fn list_claims(conn: &mut AsyncPgConnection, filter: &ClaimFilter) -> Result<Vec<Claim>> {
    let mut q = claims::table.select(Claim::as_select()).into_boxed();
    if let Some(status) = filter.status {
        q = q.filter(claims::status.eq(status));
    }
    if let Some(receiver) = &filter.receiver_id {
        q = q.filter(claims::receiver_id.eq(receiver.clone()));
    }
    if let Some(token) = &filter.token_contract {
        q = q.filter(claims::token_contract.eq(token.clone()));
    }
    if let Some(campaign) = filter.campaign_id {
        q = q.filter(claims::campaign_id.eq(campaign));
    }
    if let Some(before) = filter.before {
        q = q.filter(claims::id.lt(before.0));
    }
    Ok(q.order(claims::id.desc())
        .limit(filter.limit.max(0))
        .load(conn)
        .await?)
}

/// Inserts many manual claims in one statement (one round trip, one commit), skipping those whose
/// idempotency key already exists. Returns, for each row of `rows` in order, the stored claim and whether this
/// call created it; a key repeated within `rows` is created once and reported as existing for the repeats.
/// Used by the API to coalesce concurrent `POST /send-ft` requests; one failing row fails the whole statement,
/// so callers fall back to [`crate::claims::insert_manual_claim`] row by row on error.
pub async fn insert_manual_claims(
    conn: &mut AsyncPgConnection,
    rows: &[crate::claims::NewClaim],
) -> Result<Vec<(Claim, bool)>> {
    use std::collections::HashMap;

    use diesel::upsert::on_constraint;

    if rows.is_empty() {
        return Ok(vec![]);
    }
    let mut keys = Vec::with_capacity(rows.len());
    let mut unique: Vec<&crate::claims::NewClaim> = Vec::with_capacity(rows.len());
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let key = row.idempotency_key.as_deref().ok_or_else(|| {
            crate::error::StoreError::Corrupt("manual claim without idempotency key".into())
        })?;
        keys.push(key);
        if let std::collections::hash_map::Entry::Vacant(e) = first.entry(key) {
            e.insert(i);
            unique.push(row);
        }
    }
    let values: Vec<crate::claims::NewClaim> = unique.into_iter().cloned().collect();
    let created: Vec<Claim> = diesel::insert_into(claims::table)
        .values(&values)
        .on_conflict(on_constraint("claims_manual_key"))
        .do_nothing()
        .returning(Claim::as_returning())
        .get_results(conn)
        .await?;
    let mut by_key: HashMap<String, (Claim, bool)> = created
        .into_iter()
        .filter_map(|c| c.idempotency_key.clone().map(|k| (k, (c, true))))
        .collect();
    let missing: Vec<&str> = first
        .keys()
        .copied()
        .filter(|k| !by_key.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        let existing: Vec<Claim> = claims::table
            .filter(claims::idempotency_key.eq_any(&missing))
            .select(Claim::as_select())
            .load(conn)
            .await?;
        for c in existing {
            if let Some(k) = c.idempotency_key.clone() {
                by_key.insert(k, (c, false));
            }
        }
    }
    keys.iter()
        .enumerate()
        .map(|(i, key)| {
            let (claim, created) = by_key.get(*key).cloned().ok_or_else(|| {
                crate::error::StoreError::Corrupt(format!("manual claim `{key}` vanished"))
            })?;
            // Only the first occurrence of a key in this call created the row.
            Ok((claim, created && first.get(key) == Some(&i)))
        })
        .collect()
}
