//! `payouts-api` owns the HTTP surface: the axum router, auth, JSON errors, its own HTTP metrics and the
//! `/metrics` encoding of the registry the binary hands it, and the embedded dashboard. It reads state,
//! inserts manual claims and queues jobs (replays) for the workers; it never signs or broadcasts.
//!
//! Must not touch: any worker crate (indexer, distributor, webhooks) — it depends on `payouts-store` and
//! `payouts-near` only; what it shows of workers in the same process comes through the binary
//! ([`IndexerProbe`], a `prometheus-client` registry).
//!
//! Routes: `GET /health`, `GET /ready`, `GET /status`, `GET /metrics`, `POST /send-ft`, `GET /claims`,
//! `GET /claims/{id}`, `POST|GET /admin/replay`, `POST /admin/webhooks/{id}/redeliver`, `GET /openapi.json`,
//! the dashboard at `/`.
//!
//! ```no_run
//! # async fn demo(pool: payouts_store::PgPool) -> Result<(), payouts_api::Error> {
//! use payouts_api::{serve, AppState, ApiConfig};
//! let state = AppState::builder(pool, ApiConfig::default()).rpc_url("http://127.0.0.1:3030").build()?;
//! let listener = payouts_api::bind(state.config().listen).await?;
//! serve(listener, state, tokio_util::sync::CancellationToken::new()).await
//! # }
//! ```

pub mod auth;
mod batch;
pub mod campaigns;
mod chain;
pub mod config;
mod conn;
pub mod error;
mod explorer;
mod figures;
mod guard;
pub mod metrics;
pub mod model;
pub use routes::openapi;
pub mod routes;
mod server;
mod state;
mod text;

pub use config::{ApiConfig, Scope, TokenConfig};
pub use error::{ApiError, Error, ErrorBody};
pub use routes::router;
pub use server::{bind, serve, serve_addr};
pub use state::{AppState, AppStateBuilder, IndexerPosition, IndexerProbe};
