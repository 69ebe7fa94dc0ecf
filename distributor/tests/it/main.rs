//! Distributor tests against the devnet and a real PostgreSQL.

mod coalesce;
mod death;
mod gas;
mod guards;
mod incidents;
mod payouts;
mod prepare;
mod rpc;
mod signing;
mod webhooks;
mod world;
