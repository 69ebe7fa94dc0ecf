//! Indexer tests: real lake data, the real near-lake-framework streamer, a real PostgreSQL.

mod chain;
mod devnet;
mod fixture;
