//! The delivery worker: one task per endpoint reading its outbox rows in creation order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use payouts_store::webhooks::{
    lease_endpoint, mark_delivered, mark_failed, pending_deliveries, purge_delivered,
    release_endpoints, sync_endpoints, Delivery, EndpointSpec,
};
use payouts_store::{PgPool, StoreError};
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::config::{redacted_url, EndpointConfig, Secret, WebhooksConfig};
use crate::sign::{sign, EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// Why the worker cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Invalid `[webhooks]` settings or a missing secret; the message names the key or variable.
    #[error("invalid webhook configuration: {0}")]
    Config(String),
    /// The database refused the endpoint sync.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The HTTP client could not be built.
    #[error("webhook HTTP client: {0}")]
    Http(String),
}

/// Delivery counters (all endpoints), for `/metrics`.
#[derive(Debug, Default)]
pub struct WebhookMetrics {
    /// 2xx answers.
    pub delivered: AtomicU64,
    /// Failed attempts (non-2xx, timeout, connection error).
    pub failed_attempts: AtomicU64,
    /// Deliveries that ran out of attempts.
    pub dead: AtomicU64,
}

/// `/metrics` of a webhook worker running in the process: registered by the binary in the registry it owns.
impl payouts_near::prom::Collector for WebhookMetrics {
    fn encode(&self, mut enc: payouts_near::prom::DescriptorEncoder) -> std::fmt::Result {
        use payouts_near::prom::counter;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut enc,
            "payouts_webhook_deliveries_total",
            "Webhook deliveries answered with a 2xx.",
            get(&self.delivered),
        )?;
        counter(
            &mut enc,
            "payouts_webhook_failed_attempts_total",
            "Webhook requests that failed (non-2xx, timeout, connection error).",
            get(&self.failed_attempts),
        )?;
        counter(
            &mut enc,
            "payouts_webhook_dead_total",
            "Webhook deliveries that ran out of attempts.",
            get(&self.dead),
        )
    }
}

/// One endpoint, ready to send to.
#[derive(Debug, Clone)]
struct Target {
    config: EndpointConfig,
    secret: Secret,
}

/// The webhook delivery worker of one process.
pub struct Webhooks {
    pool: PgPool,
    config: WebhooksConfig,
    targets: Vec<Target>,
    http: reqwest::Client,
    owner: String,
    metrics: Arc<WebhookMetrics>,
}

/// How one request ended.
enum Attempt {
    Delivered,
    Failed {
        error: String,
        http_status: Option<i32>,
    },
}

impl Webhooks {
    /// Validates the configuration and reads every endpoint's secret from its environment variable.
    pub fn new(
        pool: PgPool,
        config: WebhooksConfig,
        metrics: Arc<WebhookMetrics>,
    ) -> Result<Self, WebhookError> {
        config.validate().map_err(WebhookError::Config)?;
        let targets = config
            .endpoints
            .iter()
            .map(|e| {
                Ok(Target {
                    secret: e.secret().map_err(WebhookError::Config)?,
                    config: e.clone(),
                })
            })
            .collect::<Result<Vec<_>, WebhookError>>()?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_millis(config.request_timeout_ms))
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .user_agent(concat!("near-payouts-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookError::Http(e.to_string()))?;
        let owner = payouts_store::owner::process_owner("webhooks");
        Ok(Self {
            pool,
            config,
            targets,
            http,
            owner,
            metrics,
        })
    }

    /// This process's lease owner id.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Syncs the endpoints table with the configuration (so the triggers start writing rows for them), then
    /// delivers until `cancel`. Configured with no endpoints, it only disables the stored ones and returns.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), WebhookError> {
        let specs: Vec<EndpointSpec> = self
            .config
            .endpoints
            .iter()
            .map(|e| EndpointSpec {
                name: e.name.clone(),
                url: e.url.clone(),
                events: e.events.iter().map(|t| t.as_str().to_string()).collect(),
            })
            .collect();
        {
            let mut conn = payouts_store::get(&self.pool).await?;
            sync_endpoints(&mut conn, &specs).await?;
        }
        if self.targets.is_empty() {
            tracing::info!("no webhook endpoints configured");
            return Ok(());
        }
        let me = Arc::new(self);
        tracing::info!(
            owner = %me.owner,
            endpoints = ?me.targets.iter().map(|t| t.config.name.as_str()).collect::<Vec<_>>(),
            "webhook delivery started"
        );
        let mut tasks = tokio::task::JoinSet::new();
        for target in me.targets.clone() {
            let me = me.clone();
            let cancel = cancel.clone();
            tasks.spawn(async move { me.endpoint_loop(target, cancel).await });
        }
        if me.config.retention_hours > 0 {
            let me = me.clone();
            let cancel = cancel.clone();
            tasks.spawn(async move { me.purge_loop(cancel).await });
        }
        while tasks.join_next().await.is_some() {}
        if let Ok(mut conn) = payouts_store::get(&me.pool).await {
            if let Err(e) = release_endpoints(&mut conn, &me.owner).await {
                tracing::warn!(error = %e, "could not release webhook leases");
            }
        }
        tracing::info!("webhook delivery stopped");
        Ok(())
    }

    /// Sleeps `d` unless cancelled first; `false` when cancelled.
    async fn pause(cancel: &CancellationToken, d: Duration) -> bool {
        tokio::select! {
            () = cancel.cancelled() => false,
            () = tokio::time::sleep(d) => true,
        }
    }

    async fn endpoint_loop(&self, target: Target, cancel: CancellationToken) {
        let name = target.config.name.as_str();
        let poll = Duration::from_millis(self.config.poll_interval_ms);
        let renew_every = Duration::from_millis(self.config.lease_ttl_ms / 3);
        let mut leased_at: Option<Instant> = None;
        while !cancel.is_cancelled() {
            match self
                .round(&target, &mut leased_at, renew_every, &cancel)
                .await
            {
                Ok(Some(wait)) => {
                    if !Self::pause(&cancel, wait.min(poll * 4).max(Duration::from_millis(5))).await
                    {
                        break;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(endpoint = name, error = %e, "webhook delivery: database error; retrying");
                    leased_at = None;
                    if !Self::pause(&cancel, poll * 4).await {
                        break;
                    }
                }
            }
        }
    }

    /// One pass over the endpoint's next rows. `Some(wait)`: nothing more to do for that long.
    async fn round(
        &self,
        target: &Target,
        leased_at: &mut Option<Instant>,
        renew_every: Duration,
        cancel: &CancellationToken,
    ) -> Result<Option<Duration>, StoreError> {
        let name = target.config.name.as_str();
        let poll = Duration::from_millis(self.config.poll_interval_ms);
        let mut conn = payouts_store::get(&self.pool).await?;
        if leased_at.is_none_or(|t| t.elapsed() >= renew_every) {
            if !lease_endpoint(&mut conn, name, &self.owner, self.config.lease_ttl_ms).await? {
                tracing::debug!(endpoint = name, "another process delivers this endpoint");
                *leased_at = None;
                return Ok(Some(poll * 4));
            }
            *leased_at = Some(Instant::now());
        }
        let in_flight = target.config.max_in_flight;
        let rows = pending_deliveries(&mut conn, name, (in_flight * 50).max(100) as i64).await?;
        drop(conn);
        let Some(head) = rows.first() else {
            return Ok(Some(poll));
        };
        let now = Utc::now();
        if head.next_attempt_at > now {
            // Strict creation order: nothing behind the head goes out before it.
            return Ok(Some(until(head.next_attempt_at, now)));
        }
        let lease_deadline = leased_at.map(|t| t + renew_every);
        let mut delivered: Vec<i64> = Vec::new();
        for chunk in rows.chunks(in_flight) {
            let now = Utc::now();
            let due: Vec<&Delivery> = chunk
                .iter()
                .take_while(|d| d.next_attempt_at <= now)
                .collect();
            // A shutdown abandons requests in flight: they are still pending and go out again later.
            let results = tokio::select! {
                r = join_all(due.iter().map(|d| self.send(target, d))) => r,
                () = cancel.cancelled() => break,
            };
            let mut failed = false;
            for (d, result) in due.iter().zip(results) {
                match result {
                    Attempt::Delivered => delivered.push(d.id),
                    Attempt::Failed { error, http_status } => {
                        failed = true;
                        self.record_failure(target, d, &error, http_status).await?;
                    }
                }
            }
            if failed || due.len() < chunk.len() {
                break;
            }
            // Keep the lease fresh during a long backlog, and record progress as we go.
            if lease_deadline.is_some_and(|t| Instant::now() >= t) {
                break;
            }
        }
        if !delivered.is_empty() {
            let mut conn = payouts_store::get(&self.pool).await?;
            mark_delivered(&mut conn, name, &delivered).await?;
            self.metrics
                .delivered
                .fetch_add(delivered.len() as u64, Ordering::Relaxed);
        }
        Ok(None)
    }

    async fn record_failure(
        &self,
        target: &Target,
        d: &Delivery,
        error: &str,
        http_status: Option<i32>,
    ) -> Result<(), StoreError> {
        let name = target.config.name.as_str();
        let attempts = u32::try_from(d.attempts).unwrap_or(0) + 1;
        self.metrics.failed_attempts.fetch_add(1, Ordering::Relaxed);
        let retry_at = (attempts < self.config.max_attempts).then(|| {
            let wait = backoff(&self.config, attempts, &mut rand::thread_rng());
            Utc::now() + chrono::Duration::milliseconds(wait.as_millis() as i64)
        });
        match retry_at {
            Some(at) => tracing::info!(
                endpoint = name, delivery = d.id, event_id = %d.event_id, attempts, error,
                retry_at = %at, "webhook delivery failed; will retry"
            ),
            None => {
                self.metrics.dead.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    endpoint = name, delivery = d.id, event_id = %d.event_id, attempts, error,
                    "webhook delivery dead: out of attempts (POST /admin/webhooks/{{id}}/redeliver retries it)"
                );
            }
        }
        let mut conn = payouts_store::get(&self.pool).await?;
        mark_failed(&mut conn, d.id, error, http_status, retry_at).await
    }

    async fn send(&self, target: &Target, d: &Delivery) -> Attempt {
        let body = body(d);
        let ts = Utc::now().timestamp();
        let signature = sign(target.secret.expose(), ts, &body);
        let sent = self
            .http
            .post(&target.config.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_ID_HEADER, d.event_id.to_string())
            .header(EVENT_TYPE_HEADER, &d.event_type)
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().is_success() => {
                // Read the (small) answer so the connection can be reused.
                let _ = resp.bytes().await;
                Attempt::Delivered
            }
            Ok(resp) => {
                let status = resp.status();
                Attempt::Failed {
                    error: format!("HTTP {status}"),
                    http_status: Some(i32::from(status.as_u16())),
                }
            }
            Err(e) => Attempt::Failed {
                error: describe(&e, &target.config.url),
                http_status: None,
            },
        }
    }

    async fn purge_loop(&self, cancel: CancellationToken) {
        let older_than = self.config.retention_hours * 3600;
        loop {
            match payouts_store::get(&self.pool).await {
                Ok(mut conn) => loop {
                    match purge_delivered(&mut conn, older_than, 10_000).await {
                        Ok(10_000) => continue,
                        Ok(n) => {
                            if n > 0 {
                                tracing::info!(deleted = n, "purged old delivered webhook rows");
                            }
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "purging delivered webhook rows failed");
                            break;
                        }
                    }
                },
                Err(e) => tracing::warn!(error = %e, "purging delivered webhook rows failed"),
            }
            if !Self::pause(&cancel, Duration::from_secs(600)).await {
                return;
            }
        }
    }
}

/// The request body: the event id and type, when it happened, and the data frozen at the state change.
/// The same bytes on every attempt.
pub fn body(d: &Delivery) -> Vec<u8> {
    let value = serde_json::json!({
        "id": d.event_id,
        "type": d.event_type,
        "created_at": d.created_at,
        "data": d.payload,
    });
    serde_json::to_vec(&value).unwrap_or_default()
}

/// Wait before attempt `failures + 1`: `initial · 2^(failures-1)`, capped, times a random 50–100 %.
pub fn backoff(cfg: &WebhooksConfig, failures: u32, rng: &mut impl Rng) -> Duration {
    let exp = failures.saturating_sub(1).min(40);
    let base = cfg
        .initial_backoff_ms
        .saturating_mul(1u64 << exp)
        .min(cfg.max_backoff_ms);
    let jittered = base / 2 + rng.gen_range(0..=base - base / 2);
    Duration::from_millis(jittered.max(1))
}

fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

/// A transport error without the URL (it may carry credentials), naming the origin instead.
fn describe(e: &reqwest::Error, url: &str) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_redirect() {
        "redirect refused"
    } else {
        "request failed"
    };
    let mut msg = format!("{kind} ({})", redacted_url(url));
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !text.contains("://") {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let cfg = WebhooksConfig {
            initial_backoff_ms: 1_000,
            max_backoff_ms: 10_000,
            ..WebhooksConfig::default()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (failures, base) in [
            (1, 1_000),
            (2, 2_000),
            (3, 4_000),
            (4, 8_000),
            (5, 10_000),
            (60, 10_000),
        ] {
            let mut seen = std::collections::HashSet::new();
            for _ in 0..200 {
                let d = backoff(&cfg, failures, &mut rng).as_millis() as u64;
                assert!(
                    (base / 2..=base).contains(&d),
                    "{failures}: {d} outside {}..={base}",
                    base / 2
                );
                seen.insert(d);
            }
            assert!(seen.len() > 20, "no jitter at {failures}");
        }
    }
}
