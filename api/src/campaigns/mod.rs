//! Campaigns (issue 20): airdrops from a file. Reading a CSV or JSON lines file one line at a time ([`rows`]),
//! exact token-unit amounts ([`amount`]), the per-row checks ([`validate`]), what only the chain knows —
//! registrations and the treasury's balance ([`chain_checks`]), the campaign's JSON ([`view`]) and
//! spreadsheet-safe CSV cells ([`csv`]). The data model, the exactly-once argument, the approval gate and the
//! retry rule are in `payouts_store::campaigns`; the routes in `crate::routes::{campaigns, campaign_admin,
//! campaign_failures}`.

pub mod amount;
pub mod chain_checks;
pub mod csv;
pub mod rows;
pub mod validate;
pub mod view;

#[cfg(test)]
mod tests;
