//! Distributor tests against the devnet and a real PostgreSQL.

mod signing;
