//! `payouts-store` owns the database: the diesel schema and models, every SQL query, the connection pool,
//! the embedded migrations runner, and the throwaway-Postgres harness used by tests and `payouts dev`.
//!
//! Other crates talk to Postgres only through this crate's functions; they never write SQL themselves.
//! Every function that must be atomic with the caller's other writes (cursor moves, claim transitions)
//! takes a `&mut AsyncPgConnection` so the caller can run it inside its own DB transaction.
//! Errors are [`StoreError`]; callers decide what a client may see (never the SQL text).
//!
//! Must not touch: NEAR (no RPC, no lake, no signing) or any worker crate — every worker depends on this
//! crate, this crate on none of them.

pub mod api_queries;
pub mod campaigns;
pub mod claims;
pub mod cluster;
pub mod cursor;
pub mod error;
pub mod gas;
pub mod incidents;
pub mod key_txs;
pub mod keys;
pub mod memo;
pub mod migrate;
pub mod owner;
pub mod pool;
pub mod reconcile;
pub mod replay_jobs;
pub mod retry;
pub mod schema;
pub mod spend;
pub mod stalls;
pub mod status;
pub mod testdb;
pub mod transactions;
pub mod types;
pub mod url;
pub mod webhooks;

pub use diesel_async::{AsyncConnection, AsyncPgConnection};
pub use error::{Result, StoreError};
pub use pool::{connect, get, DbConfig, PgPool, PooledConn};
pub use types::{
    CampaignKind, CampaignStatus, ClaimId, ClaimSource, ClaimStatus, IncidentKind, TxStatus, Yocto,
};
pub use url::DatabaseUrl;
