//! End-to-end tests of the `payouts` binary.

mod cli;
mod compose;
mod devnet;
mod kill;
mod replay;
mod run;
mod webhooks;
