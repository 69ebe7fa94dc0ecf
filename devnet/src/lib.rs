//! `payouts-devnet`: a single-process local NEAR-compatible chain for `payouts dev`, tests and
//! benchmarks. It owns the chain state (accounts, access keys, the native NEP-141 token and
//! claims contracts, blocks), enforces nearcore's transaction rules with nearcore's error
//! values, and serves the real interfaces on one HTTP port: JSON-RPC (`POST /`) and the neardata
//! endpoints the near-lake-framework FastNear provider reads (`GET /v0/...`), optionally also
//! the Lake S3 file layout. It shares no code or tables with the other crates: the product
//! talks to it only through those public interfaces, exactly as it would to testnet.
//!
//! Start it with [`Devnet::start`] (tests, in-process) or [`run`] (`payouts devnet`).

pub mod bench;
pub mod chain;
pub mod config;
pub mod contracts;
pub mod error;
pub mod faults;
pub mod fees;
pub mod genesis;
pub mod history;
mod http;
mod keyfiles;
mod load;
mod neardata;
mod node;
mod producer;
mod rpc;
mod shared;
pub mod state;
pub mod validate;

pub use bench::{bench_apply, BenchReport};
pub use chain::Congestion;
pub use config::{CongestionOverrides, DevnetConfig, Faults, InjectedError, LoadConfig, TGAS};
pub use error::DevnetError;
pub use genesis::Genesis;
pub use node::{run, BlockGas, Devnet, DevnetHandle};
