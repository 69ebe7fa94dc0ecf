//! `payouts-distributor` owns paying: the key pool and nonce lanes, batching, signing, broadcasting, retry and
//! failure isolation. It never parses blocks; outcomes reach it through the store (the indexer's
//! reconciliation). Money leaves the treasury here, so DESIGN's "Exactly-once payouts" rules are followed to
//! the letter: a signed transaction is persisted before it is broadcast, and re-broadcast as the same bytes.
//!
//! Parts: key files ([`keyfile`]), batch planning ([`plan`]: bisection groups, coalescing claims of one
//! receiver into one transfer), batch size from what a chunk admits ([`tile`]), batch signing ([`tx`]), the
//! persist-before-broadcast step ([`prepare`]: flush rule, money guards ([`guard`])), the node ([`chain`]), one lane per leased
//! key (nonce order, re-broadcast, dead-transaction detection, resync), what the lanes of one process share
//! (`shared`: guard state, batch sizing and gas, cached balance and registration reads), and the process
//! ([`runner`]: start-up, leases, background tasks, status, graceful shutdown). Imports run one way:
//! runner → lane → shared, with no module pair importing each other.
//!
//! Must not touch: blocks or the lake (it never depends on the indexer or near-lake-framework), HTTP serving,
//! or any other worker crate; it depends on `payouts-store` and `payouts-near` only.

mod accounts;
pub mod chain;
pub mod config;
pub mod death;
pub mod gas;
pub mod guard;
pub mod keyfile;
mod lane;
pub mod metrics;
pub mod plan;
pub mod prepare;
pub use payouts_near::rpc;
pub mod runner;
mod shared;
pub mod tile;
pub mod tx;

pub use config::DistributorConfig;
pub use keyfile::{load_keys, treasury_account, KeyFileError, TreasuryKey};
pub use metrics::{DistributorMetrics, DistributorSnapshot};
pub use plan::{plan, plan_transfers, Limits, Transfer, Unpayable};
pub use rpc::{redact_url, EndpointSnapshot, RpcEndpointConfig, RpcPool};
pub use runner::{Distributor, DistributorError};
pub use tx::{build_batch, SignedBatch};
