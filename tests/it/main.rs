//! End-to-end tests of the `payouts` binary.

mod api_limits;
mod campaign_cli;
mod campaigns;
mod child;
mod claims;
mod cli;
mod compose;
mod continuity;
mod dev;
mod devnet;
mod faults;
mod incidents;
mod kill;
#[allow(dead_code)]
#[path = "../../indexer/tests/it/lakechain.rs"]
mod lakechain;
mod replay;
mod rpc;
mod run;
mod webhooks;
