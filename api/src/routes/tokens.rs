//! `GET /tokens` (read, like `/status`): what the dashboard needs to show amounts and link transactions —
//! each allowed token's symbol and decimals (NEP-148 `ft_metadata`, read from the chain and cached; see
//! [`crate::chain::Chain::token_meta`]) and the explorer's transaction URL pattern of this network.
//!
//! A token whose metadata the chain does not give (node unreachable, not a NEP-148 contract) is listed with
//! `symbol` and `decimals` null: the dashboard then shows its raw amounts, never a guessed scale.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::explorer::default_explorer_tx_url;
use crate::routes::status::authorize_read;
use crate::state::AppState;

/// The OpenAPI description of this route, merged into [`crate::routes::openapi::ApiDoc`]'s.
#[derive(OpenApi)]
#[openapi(paths(list), components(schemas(TokenList, TokenView)))]
pub(crate) struct TokensDoc;

/// One allowed token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// NEP-141 contract.
    pub contract: String,
    /// `ft_metadata.symbol` (without control or invisible characters, at most 16 characters); null when
    /// the chain did not tell.
    pub symbol: Option<String>,
    /// `ft_metadata.decimals`: an amount of `n` in the smallest unit is `n / 10^decimals` tokens; null
    /// when the chain did not tell.
    pub decimals: Option<u8>,
}

/// `GET /tokens` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    /// `api.allowed_tokens` in order (the first is the default of a send or upload naming none), then the
    /// tokens the indexer's rules pay when this process knows them.
    pub tokens: Vec<TokenView>,
    /// Link of a transaction: replace `{hash}` with its hash. `api.explorer_tx_url`, else the network's
    /// default (nearblocks on mainnet and testnet); null: no explorer (a devnet).
    pub explorer_tx_url: Option<String>,
}

/// The allowed tokens with their metadata, and the explorer link pattern.
#[utoipa::path(
    get,
    path = "/tokens",
    tag = "read",
    responses(
        (status = 200, description = "Allowed tokens and the explorer link pattern", body = TokenList),
        (status = 401, description = "`read_requires_token` is on and no valid token was sent", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<TokenList>, ApiError> {
    authorize_read(&state, &headers)?;
    let chain = &state.inner.chain;
    let cfg = state.config();
    // The allowed tokens, then those the indexer's rules pay (their claims are on the dashboard too).
    let mut contracts: Vec<&String> = cfg.allowed_tokens.iter().collect();
    for token in &state.inner.rule_tokens {
        if !contracts.contains(&token) {
            contracts.push(token);
        }
    }
    // Concurrently: a node that does not answer costs one RPC timeout, not one per token.
    let metas = futures_util::future::join_all(
        contracts
            .into_iter()
            .map(|t| async move { (t, chain.token_meta(t).await) }),
    )
    .await;
    let tokens = metas
        .into_iter()
        .map(|(contract, meta)| TokenView {
            contract: contract.clone(),
            symbol: meta.as_ref().and_then(|m| m.symbol.clone()),
            decimals: meta.map(|m| m.decimals),
        })
        .collect();
    let explorer_tx_url = match &cfg.explorer_tx_url {
        Some(url) if url.is_empty() => None,
        Some(url) => Some(url.clone()),
        None => chain
            .chain_id()
            .await
            .and_then(|id| default_explorer_tx_url(&id))
            .map(str::to_string),
    };
    Ok(Json(TokenList {
        tokens,
        explorer_tx_url,
    }))
}
