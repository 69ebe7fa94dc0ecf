//! The router and its edge: every response passes one middleware that times it, bounds it with the request
//! timeout, counts it in `/metrics`, and turns any error response that is not yet JSON (axum's own 404/405,
//! body-limit 413, a caught panic) into the JSON error envelope.

use std::any::Any;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::{for_bare_status, ApiError};
use crate::metrics::method_label;
use crate::state::AppState;

pub mod admin;
pub mod campaign_admin;
pub mod campaign_failures;
pub mod campaign_passes;
pub mod campaigns;
pub mod claims;
pub mod dashboard;
pub mod health;
pub mod incidents;
pub mod metrics;
pub mod openapi;
pub mod send;
pub mod status;
pub mod tokens;

/// Longest path echoed back in a 404 message.
const MAX_ECHO: usize = 120;

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let limit = state.config().max_body_bytes;
    Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/app.js", get(dashboard::script))
        .route("/assets/app.css", get(dashboard::style))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/status", get(status::status))
        .route("/tokens", get(tokens::list))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/send-ft", post(send::send_ft))
        .route(
            "/campaigns",
            post(campaigns::upload).get(campaign_admin::list),
        )
        .route("/campaigns/{id}", get(campaign_admin::get_one))
        .route(
            "/campaigns/{id}/failures.csv",
            get(campaign_failures::failures_csv),
        )
        .route(
            "/campaigns/{id}/retry-failed",
            post(campaign_failures::retry),
        )
        .route(
            "/admin/campaigns/{id}/approve",
            post(campaign_admin::approve),
        )
        .route("/admin/campaigns/{id}/reject", post(campaign_admin::reject))
        .route("/claims", get(claims::list))
        .route("/claims/{id}", get(claims::get_one))
        .route(
            "/admin/replay",
            post(admin::start_replay).get(admin::replay_status),
        )
        .route(
            "/admin/webhooks/{id}/redeliver",
            post(admin::redeliver_webhook),
        )
        .route("/incidents", get(incidents::list))
        .route("/admin/incidents/{id}/clear", post(incidents::clear))
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(limit))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .with_state(state)
}

/// The Host allowlist and rate limits ([`crate::guard`]) in front of every route but `/health` and `/ready`.
async fn gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/health" || path == "/ready" {
        return next.run(req).await;
    }
    let token = state.inner.tokens.identify(req.headers());
    crate::guard::check(&state.inner.guard, token, req, next).await
}

async fn fallback(req: Request) -> ApiError {
    let path = req.uri().path();
    let shown: String = path.chars().take(MAX_ECHO).collect();
    ApiError::not_found(format!(
        "no route for {} {shown}; see /openapi.json",
        method_label(req.method())
    ))
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    ApiError::internal(&format_args!("handler panicked: {what}")).into_response()
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let cfg = state.config();
    // A campaign upload streams a file of up to a million rows: it has its own, longer bound.
    let timeout = Duration::from_millis(if route == "/campaigns" && method == "POST" {
        cfg.campaign_timeout_ms
    } else {
        cfg.request_timeout_ms
    });
    let mut resp = match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(%route, "request timed out");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!("the request took longer than {} ms", timeout.as_millis()),
            )
            .into_response()
        }
    };
    let status = resp.status();
    if (status.is_client_error() || status.is_server_error()) && !is_json(&resp) {
        let (code, message) = for_bare_status(status, cfg.max_body_bytes);
        let mut json = ApiError::new(status, code, message).into_response();
        // Keep informative headers of the original answer (e.g. `Allow` on a 405).
        for (name, value) in resp.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                json.headers_mut().insert(name.clone(), value.clone());
            }
        }
        resp = json;
    }
    let headers = resp.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    state
        .inner
        .http
        .observe(method, route, resp.status().as_u16(), started.elapsed());
    resp
}

/// A JSON response from already serialised bytes.
pub(crate) fn json_bytes(status: StatusCode, bytes: axum::body::Bytes) -> Response {
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
