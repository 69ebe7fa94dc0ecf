//! The webhook outbox (migration 6). Rows are written by triggers in the same transaction as the claim or
//! distributor change that causes them; this module is the delivery side: endpoint sync and leases, the next
//! deliveries of an endpoint in creation order, their outcome, the dead list, and redelivery.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{Result, StoreError};
use crate::schema::{webhook_deliveries, webhook_endpoints};

/// An endpoint as the configuration declares it (the secret is not stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    /// Unique name (`[[webhooks.endpoints]] name`).
    pub name: String,
    /// Where to POST.
    pub url: String,
    /// Event types it wants (`claim.created`, …).
    pub events: Vec<String>,
}

/// Makes the endpoints table say exactly `specs`: new ones added, changed ones updated, the others disabled
/// (their pending deliveries stay, and resume if the endpoint comes back). One transaction.
pub async fn sync_endpoints(conn: &mut AsyncPgConnection, specs: &[EndpointSpec]) -> Result<()> {
    conn.transaction(async |conn| {
        for s in specs {
            diesel::insert_into(webhook_endpoints::table)
                .values((
                    webhook_endpoints::name.eq(&s.name),
                    webhook_endpoints::url.eq(&s.url),
                    webhook_endpoints::events.eq(&s.events),
                ))
                .on_conflict(webhook_endpoints::name)
                .do_update()
                .set((
                    webhook_endpoints::url.eq(&s.url),
                    webhook_endpoints::events.eq(&s.events),
                    webhook_endpoints::enabled.eq(true),
                    webhook_endpoints::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
        }
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        diesel::update(
            webhook_endpoints::table
                .filter(webhook_endpoints::name.ne_all(&names))
                .filter(webhook_endpoints::enabled),
        )
        .set((
            webhook_endpoints::enabled.eq(false),
            webhook_endpoints::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
        Ok::<_, StoreError>(())
    })
    .await
}

/// Takes or renews `owner`'s lease on endpoint `name` for `ttl_ms`. `false`: another live process holds it.
pub async fn lease_endpoint(
    conn: &mut AsyncPgConnection,
    name: &str,
    owner: &str,
    ttl_ms: u64,
) -> Result<bool> {
    let taken = diesel::sql_query(
        "UPDATE webhook_endpoints \
         SET lease_owner = $2, lease_expires_at = now() + make_interval(secs => $3::double precision / 1000) \
         WHERE name = $1 AND enabled \
           AND (lease_owner IS NULL OR lease_owner = $2 OR lease_expires_at < now())",
    )
    .bind::<diesel::sql_types::Text, _>(name)
    .bind::<diesel::sql_types::Text, _>(owner)
    .bind::<diesel::sql_types::BigInt, _>(i64::try_from(ttl_ms).unwrap_or(i64::MAX))
    .execute(conn)
    .await?;
    Ok(taken == 1)
}

/// Gives up `owner`'s endpoint leases (graceful stop).
pub async fn release_endpoints(conn: &mut AsyncPgConnection, owner: &str) -> Result<usize> {
    Ok(
        diesel::update(webhook_endpoints::table.filter(webhook_endpoints::lease_owner.eq(owner)))
            .set((
                webhook_endpoints::lease_owner.eq(None::<String>),
                webhook_endpoints::lease_expires_at.eq(None::<DateTime<Utc>>),
            ))
            .execute(conn)
            .await?,
    )
}

/// One notification to one endpoint.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = webhook_deliveries, check_for_backend(diesel::pg::Pg))]
pub struct Delivery {
    /// Creation order (the per-endpoint delivery order); the id `POST /admin/webhooks/{id}/redeliver` takes.
    pub id: i64,
    /// Endpoint name.
    pub endpoint: String,
    /// The event's id, shared by every endpoint told of it.
    pub event_id: Uuid,
    /// `claim.created`, …
    pub event_type: String,
    /// The claim, for claim events.
    pub claim_id: Option<i64>,
    /// The body's `data`, as it was at the state change.
    pub payload: serde_json::Value,
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    /// Requests made so far.
    pub attempts: i32,
    /// Not before this.
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The HTTP status of the last answer, if there was one.
    pub last_http_status: Option<i32>,
    /// When the state change happened.
    pub created_at: DateTime<Utc>,
    /// When a 2xx answer came.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it ran out of attempts.
    pub dead_at: Option<DateTime<Utc>>,
}

/// The oldest `limit` pending deliveries of `endpoint`, in creation order.
pub async fn pending_deliveries(
    conn: &mut AsyncPgConnection,
    endpoint: &str,
    limit: i64,
) -> Result<Vec<Delivery>> {
    Ok(webhook_deliveries::table
        .filter(webhook_deliveries::endpoint.eq(endpoint))
        .filter(webhook_deliveries::status.eq("pending"))
        .order(webhook_deliveries::id)
        .limit(limit)
        .select(Delivery::as_select())
        .load(conn)
        .await?)
}

/// Records 2xx answers for `ids` of `endpoint` (one statement, plus the endpoint's counters).
pub async fn mark_delivered(
    conn: &mut AsyncPgConnection,
    endpoint: &str,
    ids: &[i64],
) -> Result<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    conn.transaction(async |conn| {
        let n = diesel::update(
            webhook_deliveries::table
                .filter(webhook_deliveries::id.eq_any(ids))
                .filter(webhook_deliveries::status.eq("pending")),
        )
        .set((
            webhook_deliveries::status.eq("delivered"),
            webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1),
            webhook_deliveries::delivered_at.eq(diesel::dsl::now),
            webhook_deliveries::last_error.eq(None::<String>),
        ))
        .execute(conn)
        .await?;
        diesel::update(webhook_endpoints::table.find(endpoint))
            .set((
                webhook_endpoints::delivered_total
                    .eq(webhook_endpoints::delivered_total + i64::try_from(n).unwrap_or(0)),
                webhook_endpoints::last_delivered_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
        Ok::<_, StoreError>(n)
    })
    .await
}

/// Records a failed attempt: retried at `retry_at`, or dead when `None`.
pub async fn mark_failed(
    conn: &mut AsyncPgConnection,
    id: i64,
    error: &str,
    http_status: Option<i32>,
    retry_at: Option<DateTime<Utc>>,
) -> Result<()> {
    let target = webhook_deliveries::table
        .find(id)
        .filter(webhook_deliveries::status.eq("pending"));
    let common = (
        webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1),
        webhook_deliveries::last_error.eq(error),
        webhook_deliveries::last_http_status.eq(http_status),
    );
    match retry_at {
        Some(at) => {
            diesel::update(target)
                .set((common, webhook_deliveries::next_attempt_at.eq(at)))
                .execute(conn)
                .await?
        }
        None => {
            diesel::update(target)
                .set((
                    common,
                    webhook_deliveries::status.eq("dead"),
                    webhook_deliveries::dead_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?
        }
    };
    Ok(())
}

/// One delivery by id.
pub async fn get_delivery(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<Delivery>> {
    Ok(webhook_deliveries::table
        .find(id)
        .select(Delivery::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// What [`redeliver`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Redelivery {
    /// Queued again (attempts reset); it goes out next, in its creation order.
    Queued(Delivery),
    /// It is still pending: nothing to do.
    AlreadyPending(Delivery),
    /// No such delivery.
    NotFound,
}

/// Queues a dead (or delivered) delivery again, with a fresh set of attempts.
pub async fn redeliver(conn: &mut AsyncPgConnection, id: i64) -> Result<Redelivery> {
    let queued: Option<Delivery> = diesel::update(
        webhook_deliveries::table
            .find(id)
            .filter(webhook_deliveries::status.ne("pending")),
    )
    .set((
        webhook_deliveries::status.eq("pending"),
        webhook_deliveries::attempts.eq(0),
        webhook_deliveries::next_attempt_at.eq(diesel::dsl::now),
        webhook_deliveries::dead_at.eq(None::<DateTime<Utc>>),
        webhook_deliveries::delivered_at.eq(None::<DateTime<Utc>>),
    ))
    .returning(Delivery::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    if let Some(d) = queued {
        return Ok(Redelivery::Queued(d));
    }
    Ok(match get_delivery(conn, id).await? {
        Some(d) => Redelivery::AlreadyPending(d),
        None => Redelivery::NotFound,
    })
}

/// The most recent dead deliveries, newest first.
pub async fn list_dead(conn: &mut AsyncPgConnection, limit: i64) -> Result<Vec<Delivery>> {
    Ok(webhook_deliveries::table
        .filter(webhook_deliveries::status.eq("dead"))
        .order(webhook_deliveries::dead_at.desc())
        .limit(limit)
        .select(Delivery::as_select())
        .load(conn)
        .await?)
}

/// One endpoint's state for `/status`.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName, Serialize)]
pub struct EndpointSummary {
    /// Name.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub name: String,
    /// Whether the configuration still lists it.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub enabled: bool,
    /// Event types it wants.
    #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
    pub events: Vec<String>,
    /// Deliveries waiting (including retries in back-off).
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub pending: i64,
    /// Deliveries that ran out of attempts.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub dead: i64,
    /// Delivered since the endpoint was first configured.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub delivered_total: i64,
    /// Last 2xx answer.
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    pub last_delivered_at: Option<DateTime<Utc>>,
    /// Creation time of the oldest pending delivery (how far behind it is).
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    pub oldest_pending_at: Option<DateTime<Utc>>,
    /// Last error of the oldest pending delivery, if it failed before.
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub head_error: Option<String>,
}

/// Every endpoint with its counts (index scans of the pending and dead partial indexes).
pub async fn endpoint_summaries(conn: &mut AsyncPgConnection) -> Result<Vec<EndpointSummary>> {
    Ok(diesel::sql_query(
        "SELECT e.name, e.enabled, e.events, e.delivered_total, e.last_delivered_at, \
           (SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint = e.name AND d.status = 'pending') AS pending, \
           (SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint = e.name AND d.status = 'dead') AS dead, \
           h.created_at AS oldest_pending_at, h.last_error AS head_error \
         FROM webhook_endpoints e \
         LEFT JOIN LATERAL (SELECT d.created_at, d.last_error FROM webhook_deliveries d \
                            WHERE d.endpoint = e.name AND d.status = 'pending' ORDER BY d.id LIMIT 1) h ON true \
         ORDER BY e.name",
    )
    .load(conn)
    .await?)
}

/// Deletes delivered rows older than `older_than_secs` (at most `limit` per call). Returns how many.
pub async fn purge_delivered(
    conn: &mut AsyncPgConnection,
    older_than_secs: u64,
    limit: i64,
) -> Result<usize> {
    Ok(diesel::sql_query(
        "DELETE FROM webhook_deliveries WHERE id IN ( \
           SELECT id FROM webhook_deliveries WHERE status = 'delivered' \
             AND delivered_at < now() - make_interval(secs => $1::double precision) LIMIT $2)",
    )
    .bind::<diesel::sql_types::BigInt, _>(i64::try_from(older_than_secs).unwrap_or(i64::MAX))
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .execute(conn)
    .await?)
}
