//! `payouts-distributor` owns paying: the key pool and nonce lanes, batching, signing, broadcasting, retry and
//! failure isolation. It never parses blocks; outcomes reach it through the store (the indexer's
//! reconciliation). Money leaves the treasury here, so DESIGN's "Exactly-once payouts" rules are followed to
//! the letter: a signed transaction is persisted before it is broadcast, and re-broadcast as the same bytes.
//!
//! So far: key files ([`keyfile`]), batch planning ([`plan`]), batch signing ([`tx`]) and the
//! persist-before-broadcast step ([`prepare`]). Broadcasting, the worker loop, lane resync and guards land with
//! the rest of the distributor issue.

pub mod keyfile;
pub mod metrics;
pub mod plan;
pub mod prepare;
pub mod tx;

pub use keyfile::{KeyFileError, TreasuryKey};
pub use metrics::{DistributorMetrics, DistributorSnapshot};
pub use plan::{plan, Limits, Unpayable};
pub use tx::{build_batch, SignedBatch};
