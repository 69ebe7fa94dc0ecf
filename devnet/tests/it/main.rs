//! Integration tests: a devnet started in-process on 127.0.0.1:0, driven by the real
//! near-jsonrpc-client 0.20 and near-lake-framework 0.7.14.

mod atomic;
mod batch;
mod common;
mod faults;
mod gas_limit;
mod lake;
mod load;
mod nearcore_limits;
mod nearcore_rpc;
mod rejections;
mod rpc;
