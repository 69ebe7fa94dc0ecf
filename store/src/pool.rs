//! The connection pool: a bounded deadpool of diesel-async connections, each with a `statement_timeout`,
//! and a wait timeout so an exhausted pool answers "busy" instead of queueing forever.

use std::time::Duration;

use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::FutureExt;
use serde::Deserialize;

use crate::error::{Result, StoreError};
use crate::url::DatabaseUrl;

/// A pool of Postgres connections.
pub type PgPool = Pool<AsyncPgConnection>;
/// One connection checked out of a [`PgPool`].
pub type PooledConn = Object<AsyncPgConnection>;

/// Database settings (`[database]` in the config file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbConfig {
    /// `postgres://user:password@host:port/db`. Secret: shown with the password masked.
    pub url: DatabaseUrl,
    /// Most connections this process opens.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// How long a caller waits for a free connection before getting [`StoreError::PoolTimeout`].
    #[serde(default = "defaults::wait_timeout_ms")]
    pub wait_timeout_ms: u64,
    /// How long opening one connection may take.
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Server-side `statement_timeout` set on every connection.
    #[serde(default = "defaults::statement_timeout_ms")]
    pub statement_timeout_ms: u64,
}

mod defaults {
    pub fn max_connections() -> usize {
        16
    }
    pub fn wait_timeout_ms() -> u64 {
        5_000
    }
    pub fn connect_timeout_ms() -> u64 {
        5_000
    }
    pub fn statement_timeout_ms() -> u64 {
        30_000
    }
}

impl DbConfig {
    /// Settings with defaults for everything but the URL.
    pub fn new(url: DatabaseUrl) -> Self {
        Self {
            url,
            max_connections: defaults::max_connections(),
            wait_timeout_ms: defaults::wait_timeout_ms(),
            connect_timeout_ms: defaults::connect_timeout_ms(),
            statement_timeout_ms: defaults::statement_timeout_ms(),
        }
    }

    /// Checks the values; the error names the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.max_connections == 0 {
            return Err("database.max_connections: must be at least 1".into());
        }
        if self.wait_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return Err(
                "database.wait_timeout_ms / connect_timeout_ms: must be more than 0".into(),
            );
        }
        Ok(())
    }
}

/// Opens one connection with the configured timeouts (also used for migrations and admin work).
pub async fn establish(cfg: &DbConfig) -> Result<AsyncPgConnection> {
    establish_with(
        cfg.url.expose(),
        cfg.connect_timeout_ms,
        cfg.statement_timeout_ms,
    )
    .await
    .map_err(|e| StoreError::Connect(format!("{} ({})", e, cfg.url)))
}

async fn establish_with(
    url: &str,
    connect_timeout_ms: u64,
    statement_timeout_ms: u64,
) -> diesel::ConnectionResult<AsyncPgConnection> {
    let connecting = AsyncPgConnection::establish(url);
    let mut conn = tokio::time::timeout(Duration::from_millis(connect_timeout_ms), connecting)
        .await
        .map_err(|_| {
            diesel::ConnectionError::BadConnection("timed out while connecting".into())
        })??;
    diesel::sql_query(format!("SET statement_timeout = {statement_timeout_ms}"))
        .execute(&mut conn)
        .await
        .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
    Ok(conn)
}

/// Builds the pool and proves the database is reachable by opening one connection.
pub async fn connect(cfg: &DbConfig) -> Result<PgPool> {
    cfg.validate().map_err(StoreError::Connect)?;
    let (connect_ms, stmt_ms) = (cfg.connect_timeout_ms, cfg.statement_timeout_ms);
    let mut manager_cfg = ManagerConfig::<AsyncPgConnection>::default();
    manager_cfg.custom_setup =
        Box::new(move |url| establish_with(url, connect_ms, stmt_ms).boxed());
    let manager = AsyncDieselConnectionManager::new_with_config(cfg.url.expose(), manager_cfg);
    let pool = Pool::builder(manager)
        .max_size(cfg.max_connections)
        .wait_timeout(Some(Duration::from_millis(cfg.wait_timeout_ms)))
        .create_timeout(Some(Duration::from_millis(cfg.connect_timeout_ms)))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Pool(e.to_string()))?;
    // Fail fast at start-up with the real reason, not later with "pool timeout".
    drop(establish(cfg).await?);
    Ok(pool)
}

/// Checks a connection out of the pool.
pub async fn get(pool: &PgPool) -> Result<PooledConn> {
    use diesel_async::pooled_connection::deadpool::PoolError;
    pool.get().await.map_err(|e| match e {
        PoolError::Timeout(_) => StoreError::PoolTimeout,
        PoolError::Backend(e) => StoreError::Connect(e.to_string()),
        other => StoreError::Pool(other.to_string()),
    })
}
