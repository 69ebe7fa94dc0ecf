//! `GET /metrics`: Prometheus text exposition.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use payouts_store::claims::count_by_status;
use payouts_store::cursor::read_cursor;
use payouts_store::incidents::open_counts;
use payouts_store::stalls::{read_stall, StallKind};
use payouts_store::webhooks::endpoint_summaries;
use payouts_store::{ClaimStatus, IncidentKind};

use crate::config::Scope;
use crate::error::ErrorBody;
use crate::metrics::{
    render_distributor, render_indexer, render_webhook_endpoints, render_webhooks, Prom,
};
use crate::state::AppState;

/// The figures `/metrics` reads from the database: claims per status, the indexer cursor, webhook
/// endpoints, open incidents per kind, the indexer's stall.
#[derive(Clone)]
pub(crate) struct DbFigures {
    counts: Vec<(ClaimStatus, i64)>,
    cursor: Option<payouts_store::cursor::Cursor>,
    endpoints: Vec<payouts_store::webhooks::EndpointSummary>,
    incidents: Vec<(IncidentKind, i64)>,
    stall: Option<payouts_store::stalls::Stall>,
}

async fn read_figures(state: &AppState) -> Result<DbFigures, payouts_store::StoreError> {
    let inner = &state.inner;
    let mut conn = payouts_store::get(&inner.read_pool).await?;
    Ok(DbFigures {
        counts: count_by_status(&mut conn).await?,
        cursor: read_cursor(&mut conn, &inner.stream).await?,
        endpoints: endpoint_summaries(&mut conn).await?,
        incidents: open_counts(&mut conn).await?,
        stall: read_stall(&mut conn, &inner.stream).await?,
    })
}

/// The database figures, read at most once per `api.status_cache_ms` (concurrent scrapes share one read).
async fn figures(state: &AppState) -> Result<DbFigures, payouts_store::StoreError> {
    let ttl = Duration::from_millis(state.config().status_cache_ms);
    let mut slot = state.inner.metrics_cache.lock().await;
    if let Some((at, f)) = slot.as_ref() {
        if at.elapsed() < ttl {
            return Ok(f.clone());
        }
    }
    let f = read_figures(state).await?;
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
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String),
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
    let mut out = Prom::default();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));

    match figures(&state).await {
        Ok(DbFigures {
            counts,
            cursor,
            endpoints,
            incidents,
            stall,
        }) => {
            out.single(
                "payouts_database_up",
                "gauge",
                "1 when the database answered this scrape.",
                1.0,
            );
            out.header("payouts_claims", "gauge", "Claims per status.");
            for s in ClaimStatus::ALL {
                let n = counts.iter().find(|(st, _)| st == s).map_or(0, |(_, n)| *n);
                out.sample("payouts_claims", &[("status", s.as_str())], n as f64);
            }
            if let Some(c) = cursor {
                out.header(
                    "payouts_indexer_cursor_height",
                    "gauge",
                    "Indexer cursor (last fully processed block) in the database.",
                );
                out.sample(
                    "payouts_indexer_cursor_height",
                    &[("stream", &inner.stream)],
                    c.block_height as f64,
                );
            }
            out.header(
                "payouts_indexer_stalled",
                "gauge",
                "1 while the indexer stream is stalled, per kind: chain_gap (a block missing from the source) or source (the source failing past indexer.stuck_after_secs). Alert on > 0.",
            );
            for kind in [StallKind::ChainGap, StallKind::Source] {
                let on = stall.as_ref().is_some_and(|s| s.kind == kind);
                out.sample(
                    "payouts_indexer_stalled",
                    &[("stream", &inner.stream), ("kind", kind.as_str())],
                    if on { 1.0 } else { 0.0 },
                );
            }
            out.header(
                "payouts_incidents_open",
                "gauge",
                "Incidents not cleared yet, per kind (each pauses its token, or every token). Alert on > 0.",
            );
            for k in IncidentKind::ALL {
                let n = incidents
                    .iter()
                    .find(|(kind, _)| kind == k)
                    .map_or(0, |(_, n)| *n);
                out.sample("payouts_incidents_open", &[("kind", k.as_str())], n as f64);
            }
            render_webhook_endpoints(&mut out, &endpoints);
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: database read failed");
            out.single(
                "payouts_database_up",
                "gauge",
                "1 when the database answered this scrape.",
                0.0,
            );
        }
    }
    if let Some(m) = &inner.indexer_metrics {
        render_indexer(&mut out, &m.snapshot(), now);
    }
    if let Some(m) = &inner.distributor_metrics {
        render_distributor(&mut out, &m.snapshot());
    }
    if let Some(m) = &inner.webhook_metrics {
        render_webhooks(&mut out, m);
    }
    inner.http.render(&mut out);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        out.finish(),
    )
        .into_response()
}
