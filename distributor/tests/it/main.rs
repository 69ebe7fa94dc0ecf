//! Distributor tests against the devnet and a real PostgreSQL.

mod prepare;
mod signing;
