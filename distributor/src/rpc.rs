//! A pool of JSON-RPC endpoints (`[[network.rpc]]`): paid providers with API keys in headers, weights,
//! request-rate limits, health with back-off, failover on errors and on 429 (honouring `Retry-After`).
//!
//! Requests are near-jsonrpc-client's method types (`methods::*`), serialised with its `methods::to_json`
//! and parsed with its `RpcMethod::parse_handler_response` and error conversions, so answers and errors are
//! exactly the client's. The HTTP exchange itself is ours (one shared `reqwest` client): the client's `call`
//! drops the response's headers, and a provider's `Retry-After` is only in the headers.
//!
//! **Secrets.** An endpoint's URL may carry a key in its query string or user-info, and its headers
//! (`Authorization`, `x-api-key`) come from the environment. None of them is ever shown: an endpoint is named
//! by its configured `name` or by its URL without user-info and query ([`redact_url`]); every error message
//! that leaves this module has the raw URL, its query values and every header value replaced by `***`
//! ([`Endpoint::scrub`]) — transport errors of `reqwest` name the whole URL.
//!
//! **Choice.** A read goes to the next healthy endpoint in weighted round-robin order and fails over to the
//! others, in order, on a transport error, a timeout, an HTTP error status (429 included) or a JSON-RPC
//! internal error; a handler error (e.g. `UNKNOWN_TRANSACTION`, `InvalidTransaction`) is an answer and is
//! returned as it is. An endpoint that failed rests for 1 s, doubling to 60 s while it keeps failing (or for
//! its `Retry-After`); when every endpoint rests, the one that rests least is tried anyway (a pool never
//! refuses to try). A transaction broadcast ([`RpcPool::broadcast`]) goes to every healthy endpoint at once:
//! different providers feed different nodes' pools, and the same bytes add no payment.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use near_jsonrpc_client::errors::{JsonRpcError, JsonRpcServerError};
use near_jsonrpc_client::methods::{self, RpcMethod};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

/// One `[[network.rpc]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RpcEndpointConfig {
    /// `http(s)://…` JSON-RPC URL. A key in its query string works but prefer `headers_env`.
    pub url: String,
    /// Name in logs, metrics and `/status` (default: the URL without credentials and query).
    #[serde(default)]
    pub name: Option<String>,
    /// Request headers whose values come from environment variables: header name → variable name,
    /// e.g. `{ "x-api-key" = "FASTNEAR_API_KEY" }` or `{ "Authorization" = "PROVIDER_BEARER" }` (the variable
    /// holds the whole value, e.g. `Bearer …`).
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
    /// Share of reads (default 1; 0: only broadcasts and failover).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Most requests per second sent to it (default: no limit). Over it, requests go to the next endpoint.
    #[serde(default)]
    pub max_requests_per_second: Option<u32>,
}

fn default_weight() -> u32 {
    1
}

impl RpcEndpointConfig {
    /// An endpoint with defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            name: None,
            headers_env: BTreeMap::new(),
            weight: 1,
            max_requests_per_second: None,
        }
    }
}

/// The pool could not be built (a configuration error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcConfigError {
    /// No endpoint.
    #[error("network.rpc: no endpoint configured")]
    Empty,
    /// A URL that is not http(s).
    #[error("network.rpc[{index}].url: `{shown}` is not an http(s) URL")]
    BadUrl {
        /// Entry.
        index: usize,
        /// The URL, redacted.
        shown: String,
    },
    /// A header's variable is not set.
    #[error("network.rpc[{index}].headers_env.{header}: environment variable {var} is not set")]
    MissingEnv {
        /// Entry.
        index: usize,
        /// Header.
        header: String,
        /// Variable.
        var: String,
    },
    /// A header name or value HTTP does not allow.
    #[error("network.rpc[{index}].headers_env.{header}: not a valid HTTP header (name or value)")]
    BadHeader {
        /// Entry.
        index: usize,
        /// Header.
        header: String,
    },
    /// Two endpoints with one name.
    #[error("network.rpc: two endpoints are named `{0}`")]
    DuplicateName(String),
}

/// `scheme://host[:port]/path` of `url`: no user-info, no query, no fragment. Not a URL: `<invalid url>`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<invalid url>".into();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let path = path.trim_end_matches('/');
    format!("{scheme}://{host}{path}")
}

/// Per-endpoint counters (cheap atomics).
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    throttled: AtomicU64,
    failovers: AtomicU64,
    broadcasts: AtomicU64,
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
struct Health {
    rest_until: Option<Instant>,
    failures: u32,
    last_error: Option<String>,
}

#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
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
    name: String,
    url: String,
    headers: HeaderMap,
    secrets: Vec<String>,
    weight: u32,
    bucket: Option<Mutex<Bucket>>,
    health: Mutex<Health>,
    counters: Counters,
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
struct NoAnswer {
    message: String,
    retry_after: Option<Duration>,
    throttled: bool,
}

/// Longest rest of a failing endpoint.
const MAX_REST: Duration = Duration::from_secs(60);

impl Endpoint {
    fn build(index: usize, cfg: &RpcEndpointConfig) -> Result<Self, RpcConfigError> {
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

    fn resting(&self, now: Instant) -> Option<Instant> {
        let h = self.health.lock().unwrap();
        h.rest_until.filter(|t| *t > now)
    }

    fn ok(&self) {
        let mut h = self.health.lock().unwrap();
        h.failures = 0;
        h.rest_until = None;
    }

    fn failed(&self, e: &NoAnswer) {
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

    fn allowed(&self) -> bool {
        self.bucket
            .as_ref()
            .is_none_or(|b| b.lock().unwrap().take())
    }

    fn snapshot(&self) -> EndpointSnapshot {
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
    async fn attempt<M: RpcMethod>(
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

/// A failed call: no endpoint answered.
#[derive(Debug, Clone)]
pub struct PoolFailure {
    /// The last endpoint's failure (scrubbed), or a summary.
    pub message: String,
}

/// The endpoints, shared by every lane.
#[derive(Debug)]
pub struct RpcPool {
    endpoints: Vec<Endpoint>,
    http: reqwest::Client,
    next: AtomicUsize,
    /// Weighted round-robin order: endpoint index, repeated by weight.
    wheel: Vec<usize>,
}

impl RpcPool {
    /// A pool of `configs` (in order; at least one).
    pub fn new(configs: &[RpcEndpointConfig]) -> Result<Self, RpcConfigError> {
        if configs.is_empty() {
            return Err(RpcConfigError::Empty);
        }
        let endpoints = configs
            .iter()
            .enumerate()
            .map(|(i, c)| Endpoint::build(i, c))
            .collect::<Result<Vec<_>, _>>()?;
        let mut names = std::collections::HashSet::new();
        for e in &endpoints {
            if !names.insert(e.name.clone()) {
                return Err(RpcConfigError::DuplicateName(e.name.clone()));
            }
        }
        let mut wheel: Vec<usize> = Vec::new();
        for (i, e) in endpoints.iter().enumerate() {
            wheel.extend(std::iter::repeat_n(i, e.weight.min(100) as usize));
        }
        if wheel.is_empty() {
            wheel = (0..endpoints.len()).collect();
        }
        Ok(Self {
            endpoints,
            http: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            next: AtomicUsize::new(0),
            wheel,
        })
    }

    /// One endpoint at `url`.
    pub fn single(url: &str) -> Result<Self, RpcConfigError> {
        Self::new(&[RpcEndpointConfig::new(url)])
    }

    /// The endpoints' names, in configuration order.
    pub fn names(&self) -> Vec<String> {
        self.endpoints.iter().map(|e| e.name.clone()).collect()
    }

    /// Every endpoint's state.
    pub fn snapshot(&self) -> Vec<EndpointSnapshot> {
        self.endpoints.iter().map(Endpoint::snapshot).collect()
    }

    /// `text` scrubbed of every endpoint's secrets.
    pub fn scrub(&self, text: &str) -> String {
        self.endpoints
            .iter()
            .fold(text.to_string(), |t, e| e.scrub(&t))
    }

    /// Endpoints in the order a read tries them: from the next turn of the weighted wheel, the healthy ones
    /// first, then the resting ones by how soon their rest ends.
    fn order(&self) -> Vec<usize> {
        let start = self.next.fetch_add(1, Ordering::Relaxed) % self.wheel.len();
        let mut order: Vec<usize> = Vec::with_capacity(self.endpoints.len());
        for k in 0..self.wheel.len() {
            let i = self.wheel[(start + k) % self.wheel.len()];
            if !order.contains(&i) {
                order.push(i);
            }
        }
        for i in 0..self.endpoints.len() {
            if !order.contains(&i) {
                order.push(i);
            }
        }
        let now = Instant::now();
        let (healthy, mut resting): (Vec<usize>, Vec<usize>) = order
            .into_iter()
            .partition(|&i| self.endpoints[i].resting(now).is_none());
        resting.sort_by_key(|&i| self.endpoints[i].resting(now));
        healthy.into_iter().chain(resting).collect()
    }

    /// One attempt of [`RpcPool::call`] on endpoint `i`: its answer, or its failure as `name: message` (a
    /// failure of the first pass counts as a failover and is logged at debug).
    async fn try_one<M: RpcMethod>(
        &self,
        i: usize,
        method: &M,
        timeout: Duration,
        first_pass: bool,
    ) -> Result<Result<M::Response, JsonRpcError<M::Error>>, String> {
        let e = &self.endpoints[i];
        match e.attempt(&self.http, method, timeout).await {
            Ok(answer) => {
                e.ok();
                Ok(answer)
            }
            Err(no) => {
                if first_pass {
                    tracing::debug!(endpoint = %e.name, error = %no.message, method = method.method_name(), "rpc endpoint failed; trying the next");
                    e.counters.failovers.fetch_add(1, Ordering::Relaxed);
                }
                e.failed(&no);
                Err(format!("{}: {}", e.name, no.message))
            }
        }
    }

    /// Calls `method` on one endpoint after another until one answers (each attempt gives up after
    /// `timeout`). A handler error is an answer.
    pub async fn call<M: RpcMethod>(
        &self,
        method: &M,
        timeout: Duration,
    ) -> Result<Result<M::Response, JsonRpcError<M::Error>>, PoolFailure> {
        let order = self.order();
        let mut last: Option<String> = None;
        let mut tried = 0;
        // Over their rate limit: skipped in the first pass, tried in the second.
        let mut limited = Vec::new();
        for &i in &order {
            if !self.endpoints[i].allowed() {
                limited.push(i);
                continue;
            }
            tried += 1;
            match self.try_one(i, method, timeout, true).await {
                Ok(answer) => return Ok(answer),
                Err(l) => last = Some(l),
            }
        }
        for i in limited {
            tried += 1;
            match self.try_one(i, method, timeout, false).await {
                Ok(answer) => return Ok(answer),
                Err(l) => last = Some(l),
            }
        }
        Err(PoolFailure {
            message: match last {
                Some(l) if tried > 1 => format!("no endpoint answered ({tried} tried); last {l}"),
                Some(l) => l,
                None => "no endpoint to try".into(),
            },
        })
    }

    /// Sends `method` (a transaction broadcast) to every healthy endpoint at once — to all of them when
    /// none is healthy — and returns the first answer, or a failure when none answered.
    pub async fn broadcast<M: RpcMethod>(
        &self,
        method: &M,
        timeout: Duration,
    ) -> Result<Result<M::Response, JsonRpcError<M::Error>>, PoolFailure> {
        let now = Instant::now();
        let mut targets: Vec<&Endpoint> = self
            .endpoints
            .iter()
            .filter(|e| e.resting(now).is_none())
            .collect();
        if targets.is_empty() {
            targets = self.endpoints.iter().collect();
        }
        let mut attempts: futures_util::stream::FuturesUnordered<_> = targets
            .iter()
            .map(|e| async move {
                e.counters.broadcasts.fetch_add(1, Ordering::Relaxed);
                let r = e.attempt(&self.http, method, timeout).await;
                match &r {
                    Ok(_) => e.ok(),
                    Err(no) => e.failed(no),
                }
                (e.name.as_str(), r)
            })
            .collect();
        let mut first: Option<Result<M::Response, JsonRpcError<M::Error>>> = None;
        let mut last = None;
        while let Some((name, r)) = futures_util::StreamExt::next(&mut attempts).await {
            match r {
                // An acceptance wins over a handler error (one node may know the tx, another reject it), and
                // ends the wait: a slow endpoint does not hold the lane up.
                Ok(Ok(v)) => return Ok(Ok(v)),
                Ok(Err(e)) if first.is_none() => first = Some(Err(e)),
                Ok(_) => {}
                Err(no) => last = Some(format!("{name}: {}", no.message)),
            }
        }
        first.ok_or_else(|| PoolFailure {
            message: last.unwrap_or_else(|| "no endpoint to try".into()),
        })
    }
}

/// Shared handle.
pub type SharedPool = Arc<RpcPool>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_and_queries() {
        assert_eq!(
            redact_url("https://user:pw@rpc.example.com/v1/?apikey=S3CRET#x"),
            "https://rpc.example.com/v1"
        );
        assert_eq!(redact_url("http://127.0.0.1:3030"), "http://127.0.0.1:3030");
        assert_eq!(redact_url("nonsense"), "<invalid url>");
    }

    #[test]
    fn messages_are_scrubbed_of_url_query_userinfo_and_header_values() {
        std::env::set_var("RPC_POOL_UNIT_KEY", "Bearer hdr-S3CRET-123");
        let mut cfg = RpcEndpointConfig::new(
            "https://alice:pw-S3CRET@rpc.example.com/?apikey=q-S3CRET-1&x=1",
        );
        cfg.headers_env
            .insert("Authorization".into(), "RPC_POOL_UNIT_KEY".into());
        let e = Endpoint::build(0, &cfg).unwrap();
        assert_eq!(e.name(), "https://rpc.example.com");
        let raw = format!(
            "error sending request for url ({}): header Bearer hdr-S3CRET-123, token hdr-S3CRET-123, pw-S3CRET, q-S3CRET-1",
            cfg.url
        );
        let shown = e.scrub(&raw);
        assert!(!shown.contains("S3CRET"), "{shown}");
        assert!(shown.contains("https://rpc.example.com"), "{shown}");
    }

    #[test]
    fn bad_configs_are_refused_without_showing_secrets() {
        assert_eq!(RpcPool::new(&[]).unwrap_err(), RpcConfigError::Empty);
        let err =
            RpcPool::new(&[RpcEndpointConfig::new("ftp://x.example/?apikey=S3CRET")]).unwrap_err();
        assert!(!err.to_string().contains("S3CRET"), "{err}");
        let mut c = RpcEndpointConfig::new("https://x.example");
        c.headers_env
            .insert("x-api-key".into(), "RPC_POOL_UNIT_UNSET_VAR".into());
        assert!(matches!(
            RpcPool::new(&[c]).unwrap_err(),
            RpcConfigError::MissingEnv { .. }
        ));
        let same = RpcEndpointConfig::new("https://x.example/?k=1");
        let err = RpcPool::new(&[same.clone(), same]).unwrap_err();
        assert!(matches!(err, RpcConfigError::DuplicateName(_)));
    }

    #[test]
    fn reads_rotate_by_weight_and_skip_resting_endpoints() {
        let mut a = RpcEndpointConfig::new("http://a.example");
        a.weight = 2;
        let b = RpcEndpointConfig::new("http://b.example");
        let pool = RpcPool::new(&[a, b]).unwrap();
        let firsts: Vec<usize> = (0..6).map(|_| pool.order()[0]).collect();
        assert_eq!(firsts.iter().filter(|&&i| i == 0).count(), 4);
        pool.endpoints[0].failed(&NoAnswer {
            message: "HTTP 429".into(),
            retry_after: Some(Duration::from_secs(5)),
            throttled: true,
        });
        for _ in 0..4 {
            assert_eq!(pool.order(), vec![1, 0]);
        }
        let s = pool.snapshot();
        assert!(!s[0].healthy && s[0].throttled == 1 && s[1].healthy);
    }
}
