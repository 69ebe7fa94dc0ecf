//! End-to-end tests of the `payouts` binary.

mod cli;
mod devnet;
mod kill;
mod replay;
