//! neardata-compatible block endpoints, as the near-lake-framework 0.7.14 FastNear provider
//! calls them: `/v0/block/{h}` (final blocks; `null` below genesis; long-polls above the final
//! head, then 404 `BLOCK_HEIGHT_TOO_HIGH`), `/v0/block/{h}/headers`, `/shard/{s}`, `/chunk/{s}`,
//! `/v0/block_opt/{h}[/headers]` (optimistic), and `/v0/last_block/{final|optimistic}[/headers]`
//! and `/v0/first_block`, which redirect (302) to the matching `/v0/block…` URL.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::chain::Block;
use crate::shared::Shared;

pub(crate) fn routes(shared: Arc<Shared>) -> Router<Arc<Shared>> {
    Router::new()
        .route("/v0/block/{h}", get(block))
        .route("/v0/block/{h}/headers", get(block_headers))
        .route("/v0/block/{h}/shard/{s}", get(block_shard))
        .route("/v0/block/{h}/chunk/{s}", get(block_chunk))
        .route("/v0/block_opt/{h}", get(block_opt))
        .route("/v0/block_opt/{h}/headers", get(block_opt_headers))
        .route("/v0/last_block/{finality}", get(last_block))
        .route("/v0/last_block/{finality}/headers", get(last_block_headers))
        .route("/v0/first_block", get(first_block))
        .route_layer(axum::middleware::from_fn_with_state(shared, delay))
}

fn json(bytes: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// A 302 redirect, as neardata answers `last_block` requests.
fn found(url: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

fn error(status: StatusCode, kind: &str, message: String) -> Response {
    let body = serde_json::json!({ "error": message, "type": kind });
    (status, axum::Json(body)).into_response()
}

/// Which view of a block to answer with.
#[derive(Clone, Copy)]
enum Part {
    Message,
    Headers,
    Shard(u64),
    Chunk(u64),
}

fn render(block: &Block, part: Part) -> Response {
    match part {
        Part::Message => json(block.json()),
        Part::Headers => json(block.header_json()),
        Part::Shard(0) => json(Bytes::from(
            serde_json::to_vec(&block.shard()).unwrap_or_default(),
        )),
        Part::Chunk(0) => {
            let chunk = block.shard().and_then(|s| s.chunk.as_ref());
            json(Bytes::from(serde_json::to_vec(&chunk).unwrap_or_default()))
        }
        Part::Shard(_) | Part::Chunk(_) => json(Bytes::from_static(b"null")),
    }
}

/// Waits out the `neardata_delay_ms` fault, if any, before every neardata answer.
async fn delay(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let ms = shared.faults.lock().faults().neardata_delay_ms;
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    next.run(request).await
}

/// Answers with `part` of block `height` once it is final (or, `optimistic`, once produced).
async fn serve(shared: Arc<Shared>, height: &str, part: Part, optimistic: bool) -> Response {
    let Ok(height) = height.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_BLOCK_HEIGHT",
            format!("bad height {height}"),
        );
    };
    let lag = if optimistic {
        0
    } else {
        crate::chain::FINALITY_LAG
    };
    let genesis = shared.chain.lock().params().genesis_height;
    if height < genesis {
        return json(Bytes::from_static(b"null"));
    }
    // The head must reach height + lag (the genesis block is final from the start).
    let needed = if height == genesis {
        genesis
    } else {
        height.saturating_add(lag)
    };
    let mut head = shared.head.subscribe();
    let mut stop = shared.stop.subscribe();
    let wait = Duration::from_millis(shared.cfg.neardata_poll_ms);
    let reached = tokio::select! {
        r = tokio::time::timeout(wait, head.wait_for(|h| *h >= needed)) => r.is_ok_and(|r| r.is_ok()),
        _ = stop.wait_for(|s| *s) => false,
    };
    if !reached {
        let msg = format!("Block height {height} is not available yet");
        return error(StatusCode::NOT_FOUND, "BLOCK_HEIGHT_TOO_HIGH", msg);
    }
    let block = shared.chain.lock().block_at(height).cloned();
    match block {
        Some(block) => render(&block, part),
        None => json(Bytes::from_static(b"null")),
    }
}

async fn block(State(s): State<Arc<Shared>>, Path(h): Path<String>) -> Response {
    serve(s, &h, Part::Message, false).await
}

async fn block_headers(State(s): State<Arc<Shared>>, Path(h): Path<String>) -> Response {
    serve(s, &h, Part::Headers, false).await
}

async fn block_shard(
    State(s): State<Arc<Shared>>,
    Path((h, shard)): Path<(String, u64)>,
) -> Response {
    serve(s, &h, Part::Shard(shard), false).await
}

async fn block_chunk(
    State(s): State<Arc<Shared>>,
    Path((h, shard)): Path<(String, u64)>,
) -> Response {
    serve(s, &h, Part::Chunk(shard), false).await
}

async fn block_opt(State(s): State<Arc<Shared>>, Path(h): Path<String>) -> Response {
    serve(s, &h, Part::Message, true).await
}

async fn block_opt_headers(State(s): State<Arc<Shared>>, Path(h): Path<String>) -> Response {
    serve(s, &h, Part::Headers, true).await
}

fn last_block_url(shared: &Shared, finality: &str, suffix: &str) -> Option<String> {
    let chain = shared.chain.lock();
    match finality {
        "final" => Some(format!("/v0/block/{}{suffix}", chain.final_height())),
        "optimistic" => Some(format!("/v0/block_opt/{}{suffix}", chain.head().height)),
        _ => None,
    }
}

async fn last_block(State(s): State<Arc<Shared>>, Path(finality): Path<String>) -> Response {
    match last_block_url(&s, &finality, "") {
        Some(url) => found(&url),
        None => error(
            StatusCode::NOT_FOUND,
            "UNKNOWN_FINALITY",
            format!("unknown finality {finality}"),
        ),
    }
}

async fn last_block_headers(
    State(s): State<Arc<Shared>>,
    Path(finality): Path<String>,
) -> Response {
    match last_block_url(&s, &finality, "/headers") {
        Some(url) => found(&url),
        None => error(
            StatusCode::NOT_FOUND,
            "UNKNOWN_FINALITY",
            format!("unknown finality {finality}"),
        ),
    }
}

async fn first_block(State(s): State<Arc<Shared>>) -> Response {
    let genesis = s.chain.lock().params().genesis_height;
    found(&format!("/v0/block/{genesis}"))
}
