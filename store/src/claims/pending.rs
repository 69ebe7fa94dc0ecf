//! The pending claims as the distributor sees them: locked for a batch (`FOR UPDATE SKIP LOCKED`, so
//! concurrent lanes get disjoint sets), the tokens with work, and a look ahead at receivers. One filter,
//! [`payable`], says which claims may be paid now: pending, of the token, and not waiting for a retry. Held
//! claims (awaiting a campaign's approval) are not `pending`, so no query here can see them.

use diesel::dsl::{now, And, Eq, IsNull, LtEq, Or};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::Claim;
use crate::error::Result;
use crate::schema::claims;
use crate::types::ClaimStatus;

type Payable<'a> = And<
    And<Eq<claims::status, ClaimStatus>, Eq<claims::token_contract, &'a str>>,
    Or<IsNull<claims::retry_at>, LtEq<claims::retry_at, now>>,
>;

/// Pending claims of `token` whose retry (if any) is due.
fn payable(token: &str) -> Payable<'_> {
    claims::status
        .eq(ClaimStatus::Pending)
        .and(claims::token_contract.eq(token))
        .and(claims::retry_at.is_null().or(claims::retry_at.le(now)))
}

/// Locks up to `limit` of the oldest pending claims of `token` for the caller's DB transaction, leaving out
/// those waiting for a retry (`retry_at` in the future).
/// Rows locked by another transaction are skipped, so concurrent callers get disjoint sets.
/// Must run inside a transaction, or the locks end with the statement.
pub async fn lock_pending(
    conn: &mut AsyncPgConnection,
    token: &str,
    limit: i64,
) -> Result<Vec<Claim>> {
    Ok(claims::table
        .filter(payable(token))
        .order(claims::id.asc())
        .limit(limit)
        .for_update()
        .skip_locked()
        .select(Claim::as_select())
        .load(conn)
        .await?)
}

/// Locks up to `limit` more pending claims of `token` whose receiver is one of `receivers`, that may be
/// coalesced and are not held for isolation or a retry, leaving out `locked` (what the caller holds
/// already) and rows locked by others. Oldest first. For merging the other pending claims of the receivers
/// a batch is about to pay into their transfers. Must run inside a transaction, like [`lock_pending`].
pub async fn lock_pending_of_receivers(
    conn: &mut AsyncPgConnection,
    token: &str,
    receivers: &[&str],
    locked: &[i64],
    limit: i64,
) -> Result<Vec<Claim>> {
    if receivers.is_empty() || limit <= 0 {
        return Ok(vec![]);
    }
    Ok(claims::table
        .filter(payable(token))
        .filter(claims::receiver_id.eq_any(receivers))
        .filter(claims::may_coalesce.eq(true))
        .filter(claims::needs_isolation.eq(false))
        .filter(diesel::dsl::not(claims::id.eq_any(locked)))
        .order(claims::id.asc())
        .limit(limit)
        .for_update()
        .skip_locked()
        .select(Claim::as_select())
        .load(conn)
        .await?)
}

/// Tokens that have pending claims. A loose index scan over the pending index: one probe per token, however
/// many claims are pending.
pub async fn pending_tokens(conn: &mut AsyncPgConnection) -> Result<Vec<String>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        token_contract: String,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "WITH RECURSIVE t(token_contract) AS ( \
           (SELECT token_contract FROM claims WHERE status = 'pending' ORDER BY token_contract LIMIT 1) \
           UNION ALL \
           SELECT (SELECT c.token_contract FROM claims c \
                   WHERE c.status = 'pending' AND c.token_contract > t.token_contract \
                   ORDER BY c.token_contract LIMIT 1) \
           FROM t WHERE t.token_contract IS NOT NULL) \
         SELECT token_contract FROM t WHERE token_contract IS NOT NULL",
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.token_contract).collect())
}

/// Receivers of up to `limit` of the oldest pending claims of `token`, without locking anything (a look ahead,
/// e.g. to check registrations before a batch is cut).
pub async fn peek_pending_receivers(
    conn: &mut AsyncPgConnection,
    token: &str,
    limit: i64,
) -> Result<Vec<String>> {
    Ok(claims::table
        .filter(payable(token))
        .order(claims::id.asc())
        .limit(limit)
        .select(claims::receiver_id)
        .load(conn)
        .await?)
}
