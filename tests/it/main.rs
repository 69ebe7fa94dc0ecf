//! End-to-end tests of the `payouts` binary.

mod api_limits;
mod child;
mod claims;
mod cli;
mod compose;
mod dev;
mod devnet;
mod faults;
mod incidents;
mod kill;
mod replay;
mod rpc;
mod run;
mod webhooks;
