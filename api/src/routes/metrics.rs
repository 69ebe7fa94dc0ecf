//! `GET /metrics`: Prometheus exposition (OpenMetrics text, through `prometheus-client`): the workers'
//! collectors the binary registered, then the API's own: gauges read from the database and the HTTP series.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use payouts_near::prom::{gauge, gauges, Collector, DescriptorEncoder, Registry};
use payouts_store::stalls::StallKind;
use payouts_store::{ClaimStatus, IncidentKind};

use crate::config::Scope;
use crate::error::ErrorBody;
use crate::figures::DbFigures;
use crate::state::AppState;

/// The database figures, read at most once per `api.status_cache_ms` (concurrent scrapes share one read).
async fn figures(state: &AppState) -> Result<DbFigures, payouts_store::StoreError> {
    let ttl = Duration::from_millis(state.config().status_cache_ms);
    let mut slot = state.inner.metrics_cache.lock().await;
    if let Some((at, f)) = slot.as_ref() {
        if at.elapsed() < ttl {
            return Ok(f.clone());
        }
    }
    let mut conn = payouts_store::get(&state.inner.read_pool).await?;
    let f = DbFigures::read(&mut conn, &state.inner.stream).await?;
    *slot = Some((Instant::now(), f.clone()));
    Ok(f)
}

/// HTTP request counters and latency histograms, the in-process indexer's, distributor's and webhook
/// worker's metrics (when this process runs them), and gauges read from the database (claims per status,
/// indexer cursor, open incidents per kind, webhook deliveries pending and dead per endpoint).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses(
        (status = 200, description = "Prometheus exposition, OpenMetrics text 1.0.0", content_type = "application/openmetrics-text", body = String),
        (status = 401, description = "No or unknown bearer token (unless `api.metrics_open`)", body = ErrorBody),
        (status = 403, description = "The token has neither the `metrics` nor the `read` scope", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.config().metrics_open {
        if let Err(e) = state
            .inner
            .tokens
            .authorize_any(&headers, &[Scope::Metrics, Scope::Read])
        {
            return e.into_response();
        }
    }
    let inner = &state.inner;
    let figures = match figures(&state).await {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: database read failed");
            None
        }
    };
    let mut own = Registry::default();
    own.register_collector(Box::new(FromDatabase {
        figures,
        stream: inner.stream.clone(),
    }));
    own.register_collector(Box::new(std::sync::Arc::clone(&inner.http)));
    let mut registries: Vec<&Registry> = Vec::with_capacity(2);
    if let Some(r) = &inner.registry {
        registries.push(r);
    }
    registries.push(&own);
    match payouts_near::prom::encode(&registries) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(payouts_near::prom::CONTENT_TYPE),
            )],
            text,
        )
            .into_response(),
        Err(_) => {
            tracing::error!("metrics: encoding failed");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The database's figures of one scrape (`None`: the database did not answer).
#[derive(Debug)]
struct FromDatabase {
    figures: Option<DbFigures>,
    stream: String,
}

impl Collector for FromDatabase {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let e = &mut enc;
        let up_help = "1 when the database answered this scrape.";
        let Some(f) = &self.figures else {
            return gauge(e, "payouts_database_up", up_help, 0i64);
        };
        gauge(e, "payouts_database_up", up_help, 1i64)?;
        let statuses: Vec<[(&str, &str); 1]> = ClaimStatus::ALL
            .iter()
            .map(|s| [("status", s.as_str())])
            .collect();
        gauges(
            e,
            "payouts_claims",
            "Claims per status.",
            statuses.iter().zip(ClaimStatus::ALL).map(|(l, s)| {
                let n = f
                    .counts
                    .iter()
                    .find(|(st, _)| st == s)
                    .map_or(0, |(_, n)| *n);
                (&l[..], n)
            }),
        )?;
        let stream = [("stream", self.stream.as_str())];
        if let Some(c) = &f.cursor {
            gauges(
                e,
                "payouts_indexer_cursor_height",
                "Indexer cursor (last fully processed block) in the database.",
                [(&stream[..], c.block_height)],
            )?;
        }
        let kinds: Vec<[(&str, &str); 2]> = [StallKind::ChainGap, StallKind::Source]
            .iter()
            .map(|k| [("stream", self.stream.as_str()), ("kind", k.as_str())])
            .collect();
        gauges(
            e,
            "payouts_indexer_stalled",
            "1 while the indexer stream is stalled, per kind: chain_gap (a block missing from the source) or source (the source failing past indexer.stuck_after_secs). Alert on > 0.",
            kinds.iter().zip([StallKind::ChainGap, StallKind::Source]).map(|(l, kind)| {
                let on = f.stall.as_ref().is_some_and(|s| s.kind == kind);
                (&l[..], i64::from(on))
            }),
        )?;
        let incident_kinds: Vec<[(&str, &str); 1]> = IncidentKind::ALL
            .iter()
            .map(|k| [("kind", k.as_str())])
            .collect();
        gauges(
            e,
            "payouts_incidents_open",
            "Incidents not cleared yet, per kind (each pauses its token, or every token). Alert on > 0.",
            incident_kinds.iter().zip(IncidentKind::ALL).map(|(l, k)| {
                let n = f.incidents.iter().find(|(kind, _)| kind == k).map_or(0, |(_, n)| *n);
                (&l[..], n)
            }),
        )?;
        if f.endpoints.is_empty() {
            return Ok(());
        }
        let endpoints: Vec<[(&str, &str); 1]> = f
            .endpoints
            .iter()
            .map(|p| [("endpoint", p.name.as_str())])
            .collect();
        gauges(
            e,
            "payouts_webhook_pending",
            "Webhook deliveries waiting, including retries in back-off, per endpoint.",
            endpoints
                .iter()
                .zip(&f.endpoints)
                .map(|(l, p)| (&l[..], p.pending)),
        )?;
        gauges(
            e,
            "payouts_webhook_dead",
            "Webhook deliveries that ran out of attempts and were not redelivered, per endpoint.",
            endpoints
                .iter()
                .zip(&f.endpoints)
                .map(|(l, p)| (&l[..], p.dead)),
        )
    }
}
