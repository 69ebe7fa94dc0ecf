//! Store tests against a real PostgreSQL (DATABASE_URL, or a throwaway cluster).

mod campaign_retry;
mod campaigns;
mod claims;
mod cursor;
mod harness;
mod incidents;
mod keys;
mod migrations;
mod reconcile;
mod spend;
mod support;
mod webhooks;
