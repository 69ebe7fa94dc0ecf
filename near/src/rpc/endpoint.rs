//! One endpoint: its counters, health (rest with back-off), request-rate bucket, and the HTTP exchange.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::*;
use near_jsonrpc_client::errors::{JsonRpcError, JsonRpcServerError};
use near_jsonrpc_client::methods::{self, RpcMethod};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

/// Per-endpoint counters (cheap atomics).
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) requests: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) throttled: AtomicU64,
    pub(super) failovers: AtomicU64,
    pub(super) broadcasts: AtomicU64,
}

/// One endpoint's state, as `/metrics` and `/status` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSnapshot {
    /// Its name (never a secret).
    pub name: String,
    /// Not resting after a failure.
    pub healthy: bool,
    /// Requests sent (reads and broadcasts).
    pub requests: u64,
    /// Requests that gave no answer (transport, timeout, HTTP error status, internal error).
    pub errors: u64,
    /// Of those, answered 429.
    pub throttled: u64,
    /// Requests that moved on from this endpoint to another after it failed.
    pub failovers: u64,
    /// Transaction broadcasts sent to it.
    pub broadcasts: u64,
    /// Its last failure, scrubbed of secrets.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct Health {
    pub(super) rest_until: Option<Instant>,
    pub(super) failures: u32,
    pub(super) last_error: Option<String>,
}

#[derive(Debug)]
pub(super) struct Bucket {
    pub(super) rate: f64,
    pub(super) tokens: f64,
    pub(super) at: Instant,
}

impl Bucket {
    pub(super) fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One endpoint. Its `Debug` shows the name only: the URL and headers may hold secrets.
pub struct Endpoint {
    pub(super) name: String,
    pub(super) url: String,
    pub(super) headers: HeaderMap,
    pub(super) secrets: Vec<String>,
    pub(super) weight: u32,
    pub(super) bucket: Option<Mutex<Bucket>>,
    pub(super) health: Mutex<Health>,
    pub(super) counters: Counters,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .finish()
    }
}

/// Why one attempt gave no answer.
#[derive(Debug, Clone)]
pub(super) struct NoAnswer {
    pub(super) message: String,
    pub(super) retry_after: Option<Duration>,
    pub(super) throttled: bool,
}

/// Longest rest of a failing endpoint.
const MAX_REST: Duration = Duration::from_secs(60);

impl Endpoint {
    pub(super) fn build(index: usize, cfg: &RpcEndpointConfig) -> Result<Self, RpcConfigError> {
        let url = cfg.url.trim().to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(RpcConfigError::BadUrl {
                index,
                shown: redact_url(&url),
            });
        }
        let mut secrets = Vec::new();
        if let Some((_, query)) = url.split_once('?') {
            let query = query.split('#').next().unwrap_or("");
            secrets.push(query.to_string());
            for pair in query.split('&') {
                if let Some((_, v)) = pair.split_once('=') {
                    secrets.push(v.to_string());
                }
            }
        }
        if let Some((_, rest)) = url.split_once("://") {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            if let Some((userinfo, _)) = authority.rsplit_once('@') {
                secrets.push(userinfo.to_string());
                secrets.extend(userinfo.split(':').map(str::to_string));
            }
        }
        let mut headers = HeaderMap::new();
        for (header, var) in &cfg.headers_env {
            let value = std::env::var(var).map_err(|_| RpcConfigError::MissingEnv {
                index,
                header: header.clone(),
                var: var.clone(),
            })?;
            let bad = || RpcConfigError::BadHeader {
                index,
                header: header.clone(),
            };
            let name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| bad())?;
            let mut v = HeaderValue::from_str(&value).map_err(|_| bad())?;
            v.set_sensitive(true);
            headers.insert(name, v);
            secrets.push(value.clone());
            // `Bearer xyz`: the token alone is a secret too.
            secrets.extend(value.split_whitespace().map(str::to_string));
        }
        // Longest first, so a secret containing another is replaced whole; short fragments (a `Bearer`
        // scheme word, `1`) are not secrets worth replacing everywhere.
        secrets.retain(|s| s.len() >= 6 && !s.eq_ignore_ascii_case("bearer"));
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Ok(Self {
            name: cfg.name.clone().unwrap_or_else(|| redact_url(&url)),
            url,
            headers,
            secrets,
            weight: cfg.weight,
            bucket: cfg.max_requests_per_second.map(|r| {
                let rate = f64::from(r.max(1));
                Mutex::new(Bucket {
                    rate,
                    tokens: rate,
                    at: Instant::now(),
                })
            }),
            health: Mutex::new(Health::default()),
            counters: Counters::default(),
        })
    }

    /// Its name: the configured one, or the redacted URL.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `text` with the URL, its secrets and every header value replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(&self.url, &self.name);
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        out
    }

    pub(super) fn resting(&self, now: Instant) -> Option<Instant> {
        let h = self.health.lock().unwrap();
        h.rest_until.filter(|t| *t > now)
    }

    pub(super) fn ok(&self) {
        let mut h = self.health.lock().unwrap();
        h.failures = 0;
        h.rest_until = None;
    }

    pub(super) fn failed(&self, e: &NoAnswer) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        if e.throttled {
            self.counters.throttled.fetch_add(1, Ordering::Relaxed);
        }
        let mut h = self.health.lock().unwrap();
        h.failures = h.failures.saturating_add(1);
        let backoff = Duration::from_secs(1 << h.failures.saturating_sub(1).min(6)).min(MAX_REST);
        let rest = e.retry_after.map_or(backoff, |r| r.min(MAX_REST));
        h.rest_until = Some(Instant::now() + rest);
        h.last_error = Some(e.message.clone());
    }

    pub(super) fn allowed(&self) -> bool {
        self.bucket
            .as_ref()
            .is_none_or(|b| b.lock().unwrap().take())
    }

    pub(super) fn snapshot(&self) -> EndpointSnapshot {
        let h = self.health.lock().unwrap();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EndpointSnapshot {
            name: self.name.clone(),
            healthy: h.rest_until.is_none_or(|t| t <= Instant::now()),
            requests: get(&self.counters.requests),
            errors: get(&self.counters.errors),
            throttled: get(&self.counters.throttled),
            failovers: get(&self.counters.failovers),
            broadcasts: get(&self.counters.broadcasts),
            last_error: h.last_error.clone(),
        }
    }

    /// One request: the JSON-RPC answer (which may be a handler error), or why there was none.
    pub(super) async fn attempt<M: RpcMethod>(
        &self,
        http: &reqwest::Client,
        method: &M,
        timeout: Duration,
    ) -> Result<Result<M::Response, JsonRpcError<M::Error>>, NoAnswer> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let no = |message: String| NoAnswer {
            message,
            retry_after: None,
            throttled: false,
        };
        let payload = methods::to_json(method).map_err(|e| no(format!("request: {e}")))?;
        let body = serde_json::to_vec(&payload).map_err(|e| no(format!("request: {e}")))?;
        let exchange = async {
            let resp = http
                .post(&self.url)
                .headers(self.headers.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| no(self.scrub(&format!("transport: {e}"))))?;
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                return Err(NoAnswer {
                    message: format!("HTTP {status}"),
                    retry_after,
                    throttled: true,
                });
            }
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| no(self.scrub(&format!("transport: {e}"))))?;
            Ok((status, retry_after, bytes))
        };
        let (status, retry_after, bytes) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| no(format!("no answer within {} ms", timeout.as_millis())))??;
        // nearcore answers some JSON-RPC errors with an HTTP error status (408 for its own timeout, 400 for
        // a request it cannot parse): with a JSON-RPC body they are answers; without one, the endpoint (or
        // a proxy in front of it) failed.
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            if status.is_success() {
                no(format!("unreadable answer: {e}"))
            } else {
                NoAnswer {
                    message: format!("HTTP {status}"),
                    retry_after,
                    throttled: false,
                }
            }
        })?;
        let message =
            near_jsonrpc_primitives::message::decoded_to_parsed(serde_json::from_value(value))
                .map_err(|e| no(format!("unreadable answer: {e:?}")))?;
        let near_jsonrpc_primitives::message::Message::Response(response) = message else {
            return Err(no("unexpected JSON-RPC message".into()));
        };
        match response.result {
            Ok(result) => match M::parse_handler_response(result) {
                Ok(Ok(r)) => Ok(Ok(r)),
                Ok(Err(e)) => Ok(Err(JsonRpcError::ServerError(
                    JsonRpcServerError::HandlerError(e),
                ))),
                Err(e) => Err(no(format!("unreadable result: {e}"))),
            },
            Err(rpc_error) => match JsonRpcError::<M::Error>::from(rpc_error) {
                // The node (or the provider in front of it) could not serve it: another one may.
                JsonRpcError::ServerError(JsonRpcServerError::InternalError { info }) => Err(no(
                    self.scrub(&format!("internal error: {}", info.unwrap_or_default())),
                )),
                other => Ok(Err(other)),
            },
        }
    }
}

/// The `payouts_rpc_*` series of `endpoints` (nothing when there are none), labelled by endpoint name.
pub fn encode_endpoints(
    enc: &mut crate::prom::DescriptorEncoder,
    endpoints: &[EndpointSnapshot],
) -> std::fmt::Result {
    use crate::prom::{counters, gauges};
    if endpoints.is_empty() {
        return Ok(());
    }
    let labels: Vec<[(&str, &str); 1]> = endpoints
        .iter()
        .map(|e| [("endpoint", e.name.as_str())])
        .collect();
    let series = |v: fn(&EndpointSnapshot) -> u64| {
        labels
            .iter()
            .zip(endpoints)
            .map(move |(l, e)| (&l[..], v(e)))
    };
    gauges(
        enc,
        "payouts_rpc_endpoint_up",
        "1 while an RPC endpoint is healthy (not resting after a failure). The label is its name or redacted URL.",
        series(|e| u64::from(e.healthy)),
    )?;
    type Series = (&'static str, &'static str, fn(&EndpointSnapshot) -> u64);
    let per: [Series; 5] = [
        (
            "payouts_rpc_requests_total",
            "Requests sent to an RPC endpoint (reads and broadcasts).",
            |e| e.requests,
        ),
        (
            "payouts_rpc_errors_total",
            "Requests to an RPC endpoint that got no answer (transport, timeout, HTTP error, internal error).",
            |e| e.errors,
        ),
        (
            "payouts_rpc_throttled_total",
            "Requests an RPC endpoint answered with 429.",
            |e| e.throttled,
        ),
        (
            "payouts_rpc_failovers_total",
            "Requests that moved on from an RPC endpoint to the next after it failed.",
            |e| e.failovers,
        ),
        (
            "payouts_rpc_broadcasts_total",
            "Transaction broadcasts sent to an RPC endpoint.",
            |e| e.broadcasts,
        ),
    ];
    for (name, help, v) in per {
        counters(enc, name, help, series(v))?;
    }
    Ok(())
}
