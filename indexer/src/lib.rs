//! `payouts-indexer` owns the chain-to-database path: the near-lake-framework stream, event rules, claim rows,
//! outcome reconciliation, the cursor, replay and the replay jobs queued over HTTP (its `jobs` module), and
//! its own metrics collector. It writes only through `payouts-store`.
//!
//! Must not touch: signing or broadcasting (the distributor's), HTTP serving (the API's), or any other
//! worker crate; it depends on `payouts-store` and `payouts-near` only.
//!
//! A block goes: source ([`source`]) → pure scan ([`scan::scan_block`] with [`rules`]) → one DB transaction
//! ([`apply::commit_blocks`]) holding its claims, its reconciliation updates and the cursor move.

pub mod apply;
pub mod config;
pub mod error;
mod fastnear;
pub mod health;
pub mod jobs;
mod lake;
pub mod metrics;
pub mod replay;
pub mod rules;
pub mod runner;
pub mod scan;
pub mod source;

pub use config::IndexerConfig;
pub use error::IndexerError;
pub use metrics::{IndexerMetrics, MetricsSnapshot, StallState};
pub use runner::Indexer;
