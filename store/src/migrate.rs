//! Embedded diesel migrations, run through diesel-async's sync wrapper (no libpq needed).
//!
//! A Postgres advisory lock serialises concurrent runners, so several processes starting at once are safe.

use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::error::{Result, StoreError};
use crate::pool::{establish, DbConfig};

/// The schema, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

/// Arbitrary constant naming our advisory lock.
const MIGRATION_LOCK: i64 = 0x7061_796f_7574_7301;

/// What to do with the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Apply every pending migration.
    Up,
    /// Revert every applied migration (tests and `payouts migrate --down`).
    DownAll,
}

/// Applies (or reverts) migrations; returns the versions touched, in order.
pub async fn run_migrations(cfg: &DbConfig, direction: Direction) -> Result<Vec<String>> {
    let mut conn = establish(cfg).await?;
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .execute(&mut conn)
        .await?;
    let joined = tokio::task::spawn_blocking(move || {
        let mut wrapped: AsyncConnectionWrapper<AsyncPgConnection> =
            AsyncConnectionWrapper::from(conn);
        let result = match direction {
            Direction::Up => wrapped.run_pending_migrations(MIGRATIONS).map(versions),
            Direction::DownAll => wrapped.revert_all_migrations(MIGRATIONS).map(versions),
        };
        let unlock = diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
        let _ = diesel::RunQueryDsl::execute(unlock, &mut wrapped);
        result.map_err(|e| StoreError::Migration(e.to_string()))
    })
    .await;
    joined.map_err(|e| StoreError::Migration(format!("migration task stopped: {e}")))?
}

fn versions<V: std::fmt::Display>(v: Vec<V>) -> Vec<String> {
    v.into_iter().map(|m| m.to_string()).collect()
}
