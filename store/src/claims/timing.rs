//! Where the time of confirmed claims went: `payouts bench`'s latency figures.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::error::Result;

/// Where the time of confirmed claims went (for benchmarks and the status page), over claims created at or
/// after `since`.
#[derive(Debug, Clone, Default, PartialEq, QueryableByName, Serialize)]
pub struct PayoutTiming {
    /// Confirmed claims counted.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub confirmed: i64,
    /// Seconds from the first claim's creation to the last confirmation.
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub span_seconds: f64,
    /// Median seconds from pending to confirmed.
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub p50_seconds: f64,
    /// 95th percentile of the same.
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub p95_seconds: f64,
    /// 99th percentile of the same.
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub p99_seconds: f64,
    /// Mean seconds waiting for a batch (claim created → its transaction signed and stored).
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub queue_seconds: f64,
    /// Mean seconds from stored to first accepted broadcast.
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub broadcast_seconds: f64,
    /// Mean seconds from stored to confirmed (chain, finality, indexing, reconciliation).
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub settle_seconds: f64,
}

/// [`PayoutTiming`] of the claims confirmed so far that were created at or after `since`.
pub async fn payout_timing(
    conn: &mut AsyncPgConnection,
    since: DateTime<Utc>,
) -> Result<PayoutTiming> {
    Ok(diesel::sql_query(
        "SELECT count(*) AS confirmed, \
           COALESCE(EXTRACT(EPOCH FROM max(c.confirmed_at) - min(c.created_at))::float8, 0) AS span_seconds, \
           COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM c.confirmed_at - c.created_at)), 0)::float8 AS p50_seconds, \
           COALESCE(percentile_cont(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM c.confirmed_at - c.created_at)), 0)::float8 AS p95_seconds, \
           COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM c.confirmed_at - c.created_at)), 0)::float8 AS p99_seconds, \
           COALESCE(avg(EXTRACT(EPOCH FROM t.created_at - c.created_at)), 0)::float8 AS queue_seconds, \
           COALESCE(avg(EXTRACT(EPOCH FROM t.submitted_at - t.created_at)), 0)::float8 AS broadcast_seconds, \
           COALESCE(avg(EXTRACT(EPOCH FROM c.confirmed_at - t.created_at)), 0)::float8 AS settle_seconds \
         FROM claims c JOIN transactions t ON t.hash = c.current_tx_hash \
         WHERE c.status = 'confirmed' AND c.created_at >= $1",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(since)
    .get_result(conn)
    .await?)
}
