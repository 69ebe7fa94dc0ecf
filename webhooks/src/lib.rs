//! `payouts-webhooks` tells a team's own backend what happened to its claims.
//!
//! The outbox rows are written by Postgres triggers in the same transaction as each state change
//! (migration 6, [`payouts_store::webhooks`]), so a crash can neither lose a notification nor send one for a
//! change that rolled back. This crate delivers them: one task per endpoint, in creation order, at least
//! once, each request signed with `HMAC-SHA256(secret, timestamp + "." + body)`; failures back off
//! exponentially with jitter until `max_attempts`, then the delivery is dead (shown in `/status`, retried by
//! `POST /admin/webhooks/{id}/redeliver`). A slow or dead endpoint only delays itself.
//!
//! Must not touch: claims or transactions (it only reads the outbox and writes delivery state), or any
//! other worker crate; it depends on `payouts-store` and `payouts-near` only.

pub mod config;
pub mod receiver;
pub mod sign;
pub mod worker;

pub use config::{EndpointConfig, EventType, WebhooksConfig};
pub use sign::{sign, verify, SignatureError};
pub use worker::{WebhookError, WebhookMetrics, Webhooks};
