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

mod config;
mod endpoint;
#[cfg(test)]
mod tests;

pub use config::{redact_url, RpcConfigError, RpcEndpointConfig};
pub use endpoint::{encode_endpoints, Endpoint, EndpointSnapshot};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use near_jsonrpc_client::errors::JsonRpcError;
use near_jsonrpc_client::methods::RpcMethod;

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
