//! A fresh, migrated database per test: on the server named by `DATABASE_URL` when set, otherwise on one
//! throwaway [`PgCluster`] shared by the whole test process. Dropped (with `FORCE`) when the [`TestDb`]
//! drops, also when the test panics.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::cluster::PgCluster;
use crate::migrate::{run_migrations, Direction};
use crate::pool::{connect, DbConfig, PgPool};
use crate::url::DatabaseUrl;

static CLUSTER: OnceLock<Result<Arc<PgCluster>, String>> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The maintenance database URL of the test server: `DATABASE_URL`, or the shared throwaway cluster.
fn admin_url() -> Result<DatabaseUrl, String> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return DatabaseUrl::parse(&url).map_err(|e| format!("DATABASE_URL {e}"));
    }
    let cluster = CLUSTER
        .get_or_init(|| PgCluster::start().map(Arc::new).map_err(|e| e.to_string()))
        .clone()?;
    Ok(cluster.url("postgres"))
}

/// One test's own database.
#[derive(Debug)]
pub struct TestDb {
    admin: DatabaseUrl,
    url: DatabaseUrl,
    name: String,
}

impl TestDb {
    /// A fresh database with every migration applied. Panics with the reason when no server can be had:
    /// this is test support, and a test without its database cannot run.
    pub async fn new() -> Self {
        let db = Self::empty().await;
        run_migrations(&db.config(), Direction::Up)
            .await
            .unwrap_or_else(|e| panic!("migrating the test database: {e}"));
        db
    }

    /// A fresh database with no schema.
    pub async fn empty() -> Self {
        let admin = tokio::task::spawn_blocking(admin_url)
            .await
            .unwrap_or_else(|e| panic!("starting the test cluster: {e}"))
            .unwrap_or_else(|e| panic!("test database server: {e}"));
        let name = format!(
            "payouts_test_{}_{}_{:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand_suffix()
        );
        let mut conn = AsyncPgConnection::establish(admin.expose())
            .await
            .unwrap_or_else(|e| panic!("connecting to the test server {admin}: {e}"));
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        let url = admin.with_database(&name);
        TestDb { admin, url, name }
    }

    /// The database URL.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Database settings for this database, with short test timeouts.
    pub fn config(&self) -> DbConfig {
        let mut cfg = DbConfig::new(self.url.clone());
        cfg.wait_timeout_ms = 10_000;
        cfg
    }

    /// A pool on this database.
    pub async fn pool(&self) -> PgPool {
        connect(&self.config())
            .await
            .unwrap_or_else(|e| panic!("test pool: {e}"))
    }

    /// One connection to this database.
    pub async fn conn(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(self.url.expose())
            .await
            .unwrap_or_else(|e| panic!("test connection: {e}"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = AsyncPgConnection::establish(admin.expose()).await.ok()?;
                diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            tracing::warn!(database = %self.name, "could not drop test database");
        }
    }
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u32
}

/// The tests' one deadline loop: calls `check` every 50 ms until it returns `Ok`, and returns that value.
/// While the condition does not hold, `check` returns `Err(state)`: what it saw instead. Once `within` has
/// passed, panics naming `what` and the last state. Never a sleep standing in for a condition.
pub async fn wait_until<T, E: std::fmt::Debug>(
    within: std::time::Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(state) => assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {within:?} waiting for {what}; last seen: {state:?}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
