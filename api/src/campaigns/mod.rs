//! Campaigns (issue 20): airdrops from a file. The pure part lives here — reading a CSV or JSON lines file one
//! line at a time ([`rows`]), exact token-unit amounts ([`amount`]) and the per-row checks ([`validate`]); the
//! data model, the exactly-once argument and the approval gate are in `payouts_store::campaigns`.

pub mod amount;
pub mod chain_checks;
pub mod csv;
pub mod rows;
pub mod validate;
pub mod view;

#[cfg(test)]
mod tests;
