//! Distributor tests against the devnet and a real PostgreSQL.

mod death;
mod guards;
mod incidents;
mod payouts;
mod prepare;
mod signing;
mod webhooks;
mod world;
