//! What each distributor process reports about itself (pause reason, last error, heartbeat), so a status
//! page served by another process — or another machine — can show it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::error::Result;
use crate::schema::distributor_status;

/// One distributor process's report.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = distributor_status, check_for_backend(diesel::pg::Pg))]
pub struct DistributorStatus {
    /// The process's lease owner id.
    pub owner: String,
    /// Why it is not sending right now; `None` while it runs normally.
    pub paused_reason: Option<String>,
    /// The last error it met (secrets never appear here).
    pub last_error: Option<String>,
    /// When.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Process start.
    pub started_at: DateTime<Utc>,
    /// Last sign of life.
    pub heartbeat_at: DateTime<Utc>,
    /// Set on graceful shutdown.
    pub stopped_at: Option<DateTime<Utc>>,
    /// What it reports with each heartbeat beyond the above (RPC endpoints, gas per token, congestion);
    /// `{}` until the first report ([`report_details`]).
    pub details: serde_json::Value,
}

/// Registers (or re-registers) `owner` as running.
pub async fn report_started(conn: &mut AsyncPgConnection, owner: &str) -> Result<()> {
    diesel::insert_into(distributor_status::table)
        .values(distributor_status::owner.eq(owner))
        .on_conflict(distributor_status::owner)
        .do_update()
        .set((
            distributor_status::started_at.eq(diesel::dsl::now),
            distributor_status::heartbeat_at.eq(diesel::dsl::now),
            distributor_status::stopped_at.eq(None::<DateTime<Utc>>),
            distributor_status::paused_reason.eq(None::<String>),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Heartbeat with the current pause reason (`None`: running).
pub async fn report_heartbeat(
    conn: &mut AsyncPgConnection,
    owner: &str,
    paused_reason: Option<&str>,
) -> Result<()> {
    diesel::update(distributor_status::table.find(owner))
        .set((
            distributor_status::heartbeat_at.eq(diesel::dsl::now),
            distributor_status::paused_reason.eq(paused_reason),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records what `owner` reports beyond its pause reason (endpoints, gas, congestion): shown as is by the
/// status page, so it must hold no secret (the distributor redacts URLs before).
pub async fn report_details(
    conn: &mut AsyncPgConnection,
    owner: &str,
    details: &serde_json::Value,
) -> Result<()> {
    diesel::update(distributor_status::table.find(owner))
        .set(distributor_status::details.eq(details))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records the last error.
pub async fn report_error(conn: &mut AsyncPgConnection, owner: &str, error: &str) -> Result<()> {
    diesel::update(distributor_status::table.find(owner))
        .set((
            distributor_status::last_error.eq(error),
            distributor_status::last_error_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a graceful stop.
pub async fn report_stopped(conn: &mut AsyncPgConnection, owner: &str) -> Result<()> {
    diesel::update(distributor_status::table.find(owner))
        .set((
            distributor_status::stopped_at.eq(diesel::dsl::now),
            distributor_status::paused_reason.eq(None::<String>),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Every process's report, most recent heartbeat first.
pub async fn list_status(conn: &mut AsyncPgConnection) -> Result<Vec<DistributorStatus>> {
    Ok(distributor_status::table
        .order(distributor_status::heartbeat_at.desc())
        .select(DistributorStatus::as_select())
        .load(conn)
        .await?)
}
