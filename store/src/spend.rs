//! The spend ledger behind the money guards: what each token has committed to send per UTC day
//! (`daily_spend`), and what is in flight now, read and reserved under one lock per token that every lane of
//! every process takes. The argument for why this cannot overspend is in the distributor's `guard` module;
//! this module holds the SQL.
//!
//! The day is the UTC calendar day of the signing DB transaction's `now()` (the database's clock, the same
//! for every process): a batch counts against the day it was signed, whenever it is confirmed.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::sql_types::{Date, Nullable, Numeric, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::error::Result;
use crate::types::Yocto;

/// What the guards of one token weigh, read under its spend lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct SpendState {
    /// Today (UTC, database clock): the day a batch signed now counts against.
    #[diesel(sql_type = Date)]
    pub day: NaiveDate,
    /// Reserved against today's cap: signed today and not known to have paid nothing.
    #[diesel(sql_type = Numeric)]
    pub reserved_today: Yocto,
    /// Not yet reflected in a balance read at the given time: transactions open in the store, and those
    /// that succeeded since then.
    #[diesel(sql_type = Numeric)]
    pub in_flight: Yocto,
}

/// Takes the spend lock of `token` for the rest of the caller's DB transaction and reads its [`SpendState`].
/// `balance_read_at`: when the treasury's balance the caller will compare against was read (transactions
/// that succeeded since then count as in flight); `None`: only open transactions count.
///
/// Must run inside a transaction: the lock (`pg_advisory_xact_lock`) ends with it. Every reservation of the
/// token takes it first, so reservations of one token are serialised across processes, and this read (a new
/// snapshot, taken after the lock was granted) sees every earlier reservation committed.
pub async fn lock_spend(
    conn: &mut AsyncPgConnection,
    token: &str,
    balance_read_at: Option<DateTime<Utc>>,
) -> Result<SpendState> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended('payouts.spend:' || $1, 0))")
        .bind::<Text, _>(token)
        .execute(conn)
        .await?;
    Ok(diesel::sql_query(
        "SELECT (now() AT TIME ZONE 'UTC')::date AS day, \
           COALESCE((SELECT reserved FROM daily_spend \
                     WHERE token_contract = $1 AND day = (now() AT TIME ZONE 'UTC')::date), 0) AS reserved_today, \
           COALESCE((SELECT SUM(COALESCE(amount, 0)) FROM transactions \
                     WHERE token_contract = $1 AND (status IN ('signed', 'submitted', 'included') \
                       OR (status = 'final' AND finished_at >= $2))), 0) AS in_flight",
    )
    .bind::<Text, _>(token)
    .bind::<Nullable<Timestamptz>, _>(balance_read_at)
    .get_result(conn)
    .await?)
}

/// Adds `amount` to `token`'s spend of `day`, but only while the result stays within `cap` (`None`: no cap).
/// Returns false, changing nothing, when it would not. Call under [`lock_spend`], in the DB transaction that
/// stores the transaction it pays for (with `spend_day = day`).
pub async fn reserve_spend(
    conn: &mut AsyncPgConnection,
    token: &str,
    day: NaiveDate,
    amount: Yocto,
    cap: Option<Yocto>,
) -> Result<bool> {
    if cap.is_some_and(|c| amount > c) {
        return Ok(false);
    }
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Numeric)]
        #[allow(dead_code)]
        reserved: Yocto,
    }
    // One statement: the check and the addition happen on the same row version.
    let rows: Vec<Row> = diesel::sql_query(
        "INSERT INTO daily_spend (token_contract, day, reserved) VALUES ($1, $2, $3) \
         ON CONFLICT (token_contract, day) DO UPDATE \
           SET reserved = daily_spend.reserved + EXCLUDED.reserved, updated_at = now() \
           WHERE $4::numeric IS NULL OR daily_spend.reserved + EXCLUDED.reserved <= $4::numeric \
         RETURNING reserved",
    )
    .bind::<Text, _>(token)
    .bind::<Date, _>(day)
    .bind::<Numeric, _>(amount)
    .bind::<Nullable<Numeric>, _>(cap)
    .load(conn)
    .await?;
    Ok(rows.len() == 1)
}

/// Gives back what transaction `hash` reserved (it paid nothing: dead, or its receipt failed). Call only in
/// the DB transaction that moves it to `dropped`/`failed`: that move happens once, so the release does too.
pub(crate) async fn release_spend(conn: &mut AsyncPgConnection, hash: &str) -> Result<()> {
    diesel::sql_query(
        "UPDATE daily_spend d SET reserved = GREATEST(d.reserved - t.amount, 0), updated_at = now() \
         FROM transactions t \
         WHERE t.hash = $1 AND t.amount IS NOT NULL AND t.spend_day IS NOT NULL \
           AND d.token_contract = t.token_contract AND d.day = t.spend_day",
    )
    .bind::<Text, _>(hash)
    .execute(conn)
    .await?;
    Ok(())
}

/// What `token` has reserved today (UTC): confirmed and in flight, not what is known to have paid nothing.
pub async fn spent_today(conn: &mut AsyncPgConnection, token: &str) -> Result<Yocto> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Numeric)]
        reserved: Yocto,
    }
    let row: Row = diesel::sql_query(
        "SELECT COALESCE((SELECT reserved FROM daily_spend \
           WHERE token_contract = $1 AND day = (now() AT TIME ZONE 'UTC')::date), 0) AS reserved",
    )
    .bind::<Text, _>(token)
    .get_result(conn)
    .await?;
    Ok(row.reserved)
}
