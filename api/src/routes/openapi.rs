//! The OpenAPI 3.1 document served at `/openapi.json`, generated from the handlers and types (utoipa).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::campaigns::validate::{RowError, Totals};
use crate::campaigns::view::{CampaignPage, CampaignSummary, ClaimsByStatus};
use crate::config::ApiConfig;
use crate::error::{ErrorBody, ErrorDetail};
use crate::model::{
    ChainView, ClaimPage, ClaimView, ClaimsSummary, DistributorView, HeadSource, HealthView,
    IncidentList, IncidentView, IndexerView, KeyPoolView, KeyView, ReadyView, ReplayRequest,
    ReplayState, ReplayView, SendFtRequest, StallView, StatusView, Throughput, TokenClaims,
    WebhookDeliveryView, WebhookEndpointView, WebhooksView,
};
use crate::routes;
use crate::state::AppState;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from [[api.tokens]]; scopes: read, send, admin, approve",
                    ))
                    .build(),
            ),
        );
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "near-payouts API",
        description = "Status, metrics, claims and manual NEP-141 payouts. Errors are always `{\"error\":{\"code\",\"message\"}}`. Amounts are decimal strings in the token's smallest unit."
    ),
    paths(
        routes::health::health,
        routes::health::ready,
        routes::status::status,
        routes::metrics::metrics,
        routes::send::send_ft,
        routes::claims::list,
        routes::claims::get_one,
        routes::admin::start_replay,
        routes::admin::replay_status,
        routes::admin::redeliver_webhook,
        routes::incidents::list,
        routes::incidents::clear,
        routes::campaigns::upload,
        routes::campaign_admin::list,
        routes::campaign_admin::get_one,
        routes::campaign_admin::approve,
        routes::campaign_admin::reject,
        routes::campaign_failures::failures_csv,
        routes::campaign_failures::retry,
    ),
    components(schemas(
        ErrorBody, ErrorDetail, SendFtRequest, ClaimView, ClaimPage, HealthView, ReadyView, StatusView,
        ChainView, HeadSource, IndexerView, ClaimsSummary, TokenClaims, Throughput, KeyPoolView, KeyView,
        DistributorView, ReplayRequest, ReplayView, ReplayState, WebhooksView, WebhookEndpointView,
        WebhookDeliveryView, IncidentView, IncidentList, StallView,
        CampaignSummary, ClaimsByStatus, CampaignPage, routes::campaign_admin::DecisionView,
        routes::campaign_admin::RejectRequest, routes::campaigns::UploadReport, routes::campaigns::UploadRefused, Totals, RowError,
        routes::campaign_failures::RetryView, routes::send::HeldSendView, routes::campaign_passes::ChainReport,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "ops", description = "Health, readiness, metrics"),
        (name = "read", description = "Status and claims (open unless api.read_requires_token)"),
        (name = "send", description = "Manual payouts (scope `send`)"),
        (name = "admin", description = "Operations: replays, webhook redelivery, clearing incidents (scope `admin`); campaign approval (scope `approve`)"),
    )
)]
pub struct ApiDoc;

/// A regular expression matching the decimal numbers 1..=`max`, without leading zeros (what the server
/// accepts). `max` must be at least 1.
pub fn up_to(max: u128) -> String {
    let digits: Vec<u8> = max.max(1).to_string().bytes().map(|b| b - b'0').collect();
    let k = digits.len();
    let mut alts = Vec::new();
    if k >= 2 {
        alts.push(if k == 2 {
            "[1-9]".to_string()
        } else {
            format!("[1-9][0-9]{{0,{}}}", k - 2)
        });
    }
    for i in 0..k {
        let low = if i == 0 { 1 } else { 0 };
        if digits[i] > low {
            let prefix: String = digits[..i].iter().map(|d| char::from(b'0' + d)).collect();
            let range = if digits[i] - 1 == low {
                low.to_string()
            } else {
                format!("[{low}-{}]", digits[i] - 1)
            };
            let rest = k - i - 1;
            let tail = match rest {
                0 => String::new(),
                1 => "[0-9]".into(),
                n => format!("[0-9]{{{n}}}"),
            };
            alts.push(format!("{prefix}{range}{tail}"));
        }
    }
    alts.push(max.max(1).to_string());
    format!("(?:{})", alts.join("|"))
}

/// NEAR account ids: 2 to 64 of `a-z 0-9 - _ .`, separators neither doubled nor at either end.
pub const ACCOUNT_ID_PATTERN: &str =
    "^(?:(?:[a-z0-9]+[-_])*[a-z0-9]+\\.)*(?:[a-z0-9]+[-_])*[a-z0-9]+$";

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

/// The document with this configuration's constraints: which routes need a token, the allowlisted tokens,
/// the amount and memo limits, page sizes, and the answers every route can give (429, 421, 500, 503).
pub fn document(cfg: &ApiConfig) -> Value {
    let mut api = ApiDoc::openapi();
    // Routes whose description lives beside them (their own `OpenApi` derive).
    api.merge(routes::tokens::TokensDoc::openapi());
    let mut doc = serde_json::to_value(api).unwrap_or_else(|_| json!({}));
    let bearer_only = json!([{"bearer": []}]);
    let optional = json!([{}, {"bearer": []}]);
    let account = json!({"type": "string", "minLength": 2, "maxLength": 64, "pattern": ACCOUNT_ID_PATTERN, "example": "alice.devnet"});
    let optional_account = json!({"type": "string", "maxLength": 64, "pattern": format!("^$|^(?=.{{2,64}}$){}", &ACCOUNT_ID_PATTERN[1..])});
    let id = |max: u128| json!({"type": "string", "pattern": format!("^{}$", up_to(max)), "example": "1"});
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(ops) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in ops.iter_mut() {
                let open_route = path == "/health" || path == "/ready";
                let read_route = matches!(
                    path.as_str(),
                    "/status"
                        | "/claims"
                        | "/claims/{id}"
                        | "/incidents"
                        | "/campaigns/{id}"
                        | "/tokens"
                        | "/campaigns/{id}/failures.csv"
                ) || (path == "/campaigns" && method == "get");
                if read_route {
                    op["security"] = if cfg.read_requires_token {
                        bearer_only.clone()
                    } else {
                        optional.clone()
                    };
                    if cfg.read_requires_token {
                        op["responses"]["401"] = error_response("No or unknown bearer token");
                        op["responses"]["403"] = error_response("The token lacks the `read` scope");
                    }
                }
                if path == "/metrics" {
                    op["security"] = if cfg.metrics_open {
                        json!([{}])
                    } else {
                        bearer_only.clone()
                    };
                }
                if !open_route {
                    op["responses"]["421"] =
                        error_response("The Host header is not in api.allowed_hosts");
                    op["responses"]["429"] = json!({
                        "description": "Rate limited (per API token, or per client address without one); retry after the given seconds",
                        "headers": {"Retry-After": {"required": true, "description": "Seconds to wait", "schema": {"type": "integer", "minimum": 1}}},
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
                    });
                    op["responses"]["500"] =
                        error_response("Internal error (the cause is in the server log)");
                    op["responses"]["503"] = error_response("Database busy or unreachable, or the request took longer than api.request_timeout_ms");
                }
                if method == "post" && op.get("requestBody").is_some() && path != "/campaigns" {
                    op["responses"]["413"] = error_response("Body over api.max_body_bytes");
                    op["responses"]["415"] = error_response("Content-Type is not application/json");
                    op["responses"]["400"] = error_response("Invalid JSON or fields");
                }
                let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
                    continue;
                };
                for p in params.iter_mut() {
                    let name = p["name"].as_str().unwrap_or_default().to_string();
                    let schema = match (path.as_str(), name.as_str()) {
                        (_, "id") => id(i64::MAX as u128),
                        ("/claims", "status") => {
                            json!({"type": "string", "enum": ["", "held", "pending", "submitted", "confirmed", "failed"]})
                        }
                        ("/claims", "receiver" | "token") => optional_account.clone(),
                        ("/claims", "campaign") => {
                            json!({"type": "string", "pattern": format!("^$|^{}$", up_to(i64::MAX as u128))})
                        }
                        ("/claims", "cursor") => {
                            json!({"type": "string", "pattern": format!("^$|^{}$", up_to(i64::MAX as u128))})
                        }
                        ("/claims", "limit") => {
                            json!({"type": "string", "pattern": format!("^$|^{}$", up_to(u128::from(cfg.max_page_size)))})
                        }
                        ("/campaigns", "name") => {
                            let class = crate::text::memo_class();
                            let solid = format!("{}\\s]", &class[..class.len() - 1]);
                            json!({"type": "string", "minLength": 1, "maxLength": crate::routes::campaigns::MAX_NAME_CHARS, "pattern": format!("^(?!\\s*{})(?:{class}*{solid}{class}*)$", crate::routes::campaigns::SEND_PREFIX), "example": "epoch-12"})
                        }
                        ("/campaigns", "token") => {
                            let mut t = json!({"type": "string", "description": "NEP-141 contract from api.allowed_tokens; omitted: the first"});
                            if !cfg.allowed_tokens.is_empty() {
                                t["enum"] = json!(cfg.allowed_tokens);
                            }
                            t
                        }
                        ("/campaigns", "before") => {
                            json!({"type": "string", "pattern": format!("^$|^{}$", up_to(i64::MAX as u128))})
                        }
                        ("/campaigns", "limit") => {
                            json!({"type": "string", "pattern": format!("^$|^{}$", up_to(u128::from(cfg.max_page_size)))})
                        }
                        ("/incidents", "open") => {
                            json!({"type": "string", "enum": ["", "true", "false"]})
                        }
                        ("/incidents", "limit") => {
                            json!({"type": "string", "pattern": format!("^$|^{}$", up_to(500))})
                        }
                        (_, "Idempotency-Key") => {
                            json!({"type": "string", "minLength": 1, "maxLength": crate::routes::send::MAX_IDEMPOTENCY_KEY, "pattern": "^[!-~]+$", "example": "2f1c0d1e-6a55-4c3e-9d6b-1f0d2b7e8a90"})
                        }
                        _ => continue,
                    };
                    p["schema"] = schema;
                }
            }
        }
    }
    let schemas = &mut doc["components"]["schemas"];
    let send = &mut schemas["SendFtRequest"];
    send["additionalProperties"] = json!(false);
    send["properties"]["receiver_id"] = account.clone();
    send["properties"]["amount"] = json!({
        "type": "string",
        "description": format!("Amount in the token's smallest unit: digits only, no leading zero, 1 to {} (api.max_amount)", cfg.max_amount),
        "pattern": format!("^{}$", up_to(cfg.max_amount.0)),
        "example": "1000"
    });
    let mut token = json!({"type": ["string", "null"], "description": "NEP-141 contract from api.allowed_tokens; omitted or null: the first"});
    if cfg.allowed_tokens.is_empty() {
        token["type"] = json!("null");
    } else {
        let mut allowed: Vec<Value> = cfg.allowed_tokens.iter().map(|t| json!(t)).collect();
        allowed.push(Value::Null);
        token["enum"] = Value::Array(allowed);
        token["example"] = json!(cfg.allowed_tokens[0]);
    }
    send["properties"]["token"] = token;
    send["properties"]["memo"] = json!({
        "type": ["string", "null"],
        "maxLength": cfg.max_memo_chars,
        "pattern": format!("^{}*$", crate::text::memo_class()),
        "description": "Stored with the claim and appended to the ft_transfer memo; no control, bidirectional or invisible characters",
        "example": "thanks"
    });
    let replay = &mut schemas["ReplayRequest"];
    replay["additionalProperties"] = json!(false);
    for field in ["from", "to"] {
        replay["properties"][field] =
            json!({"type": "integer", "minimum": 0, "maximum": u64::MAX, "format": "uint64"});
    }
    doc
}

/// `GET /openapi.json`: [`document`] of this server's configuration.
pub async fn openapi_json(State(state): State<AppState>) -> Response {
    Json(document(state.config())).into_response()
}

#[cfg(test)]
mod tests {
    use super::up_to;

    #[test]
    fn up_to_forms() {
        assert_eq!(up_to(1), "(?:1)");
        assert_eq!(up_to(9), "(?:[1-8]|9)");
        assert_eq!(up_to(10), "(?:[1-9]|10)");
        assert_eq!(up_to(500), "(?:[1-9][0-9]{0,1}|[1-4][0-9]{2}|500)");
        assert_eq!(up_to(205), "(?:[1-9][0-9]{0,1}|1[0-9]{2}|20[0-4]|205)");
    }
}
