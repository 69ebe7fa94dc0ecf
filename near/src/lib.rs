//! The small NEAR crate of the star: what more than one worker needs of NEAR itself, and nothing of ours.
//!
//! Owns: the readable text of a failed execution ([`failure_message`], the indexer's and the distributor's
//! shared wording of a revert) and the JSON-RPC endpoint pool ([`rpc::RpcPool`]: `[[network.rpc]]`, with
//! health, failover and secrets scrubbed), which the distributor signs through and the API reads the chain
//! head from; and the Prometheus encoding helpers ([`prom`]) every worker's metrics collector uses, so a
//! registry the binary owns can be exposed by the API without the API knowing the workers; and the
//! [`BlockHeight`] type.
//!
//! Must not touch: Postgres (that is `payouts-store`), near-lake-framework or any other worker crate — the
//! indexer, distributor, API and webhooks depend on this crate and on the store, never on each other.

pub mod failure;
pub mod height;
pub mod prom;
pub mod rpc;

pub use failure::failure_message;
pub use height::BlockHeight;
pub use rpc::{redact_url, EndpointSnapshot, RpcConfigError, RpcEndpointConfig, RpcPool};
