//! The OpenAPI 3.1 document served at `/openapi.json`, generated from the handlers and types (utoipa).

use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};
use crate::model::{
    ChainView, ClaimPage, ClaimView, ClaimsSummary, DistributorView, HeadSource, HealthView,
    IncidentList, IncidentView, IndexerView, KeyPoolView, KeyView, ReadyView, ReplayRequest,
    ReplayState, ReplayView, SendFtRequest, StatusView, Throughput, TokenClaims,
    WebhookDeliveryView, WebhookEndpointView, WebhooksView,
};
use crate::routes;

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
                        "A token from [[api.tokens]]; scopes: read, send, admin",
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
    ),
    components(schemas(
        ErrorBody, ErrorDetail, SendFtRequest, ClaimView, ClaimPage, HealthView, ReadyView, StatusView,
        ChainView, HeadSource, IndexerView, ClaimsSummary, TokenClaims, Throughput, KeyPoolView, KeyView,
        DistributorView, ReplayRequest, ReplayView, ReplayState, WebhooksView, WebhookEndpointView,
        WebhookDeliveryView, IncidentView, IncidentList,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "ops", description = "Health, readiness, metrics"),
        (name = "read", description = "Status and claims (open unless api.read_requires_token)"),
        (name = "send", description = "Manual payouts (scope `send`)"),
        (name = "admin", description = "Operations: replays, webhook redelivery, clearing incidents (scope `admin`)"),
    )
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn openapi_json() -> Response {
    Json(ApiDoc::openapi()).into_response()
}
