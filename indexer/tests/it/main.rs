//! Indexer tests: real lake data, the real near-lake-framework streamer, a real PostgreSQL.

mod chain;
mod continuity;
mod devnet;
mod fixture;
mod lakechain;
mod source_errors;
