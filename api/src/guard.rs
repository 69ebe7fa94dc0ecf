//! The gate in front of every route but `/health` and `/ready`: the `Host` allowlist (a page from another
//! origin that rebinds its DNS name to 127.0.0.1 sends its own name as `Host` and gets 421) and the rate
//! limits — per API token for requests presenting a valid one, per client address for every other
//! request (429 with `Retry-After`). GCRA buckets from `governor`; the per-address map forgets quiet
//! addresses, so many clients cannot grow it without bound.
//!
//! A per-address 429 is answered after a pause (the wait, at most [`MAX_HOLD`]): a client that ignores
//! `Retry-After` and asks again at once is slowed to about one request per second per connection instead
//! of making the server spin answering it. A held request never blocks the connection cap: its
//! connection counts as idle there ([`crate::conn`]), so a new client can still take its place.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::ApiConfig;
use crate::conn::{ConnHandle, Parked};
use crate::error::ApiError;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// Longest pause before a per-address 429.
const MAX_HOLD: std::time::Duration = std::time::Duration::from_secs(1);

/// Checks between two sweeps of the per-address map.
const SWEEP_EVERY: u64 = 4096;

/// The limiters and the allowlist, built once from the configuration.
pub(crate) struct Guard {
    hosts: Hosts,
    per_ip: Option<Keyed<IpAddr>>,
    per_token: Option<Keyed<usize>>,
    checks: AtomicU64,
    clock: DefaultClock,
}

enum Hosts {
    Any,
    Only(Vec<String>),
}

const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

fn quota(per_second: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

impl Guard {
    pub(crate) fn new(cfg: &ApiConfig) -> Self {
        let hosts = if cfg.allowed_hosts.iter().any(|h| h == "*") {
            Hosts::Any
        } else if cfg.allowed_hosts.is_empty() {
            if cfg.listen.ip().is_loopback() {
                Hosts::Only(LOOPBACK_NAMES.iter().map(|s| s.to_string()).collect())
            } else {
                Hosts::Any
            }
        } else {
            Hosts::Only(
                cfg.allowed_hosts
                    .iter()
                    .map(|h| {
                        h.trim_start_matches('[')
                            .trim_end_matches(']')
                            .to_ascii_lowercase()
                    })
                    .collect(),
            )
        };
        Self {
            hosts,
            per_ip: quota(cfg.rate_limit_ip_per_second, cfg.rate_limit_ip_burst)
                .map(RateLimiter::keyed),
            per_token: quota(cfg.rate_limit_token_per_second, cfg.rate_limit_token_burst)
                .map(RateLimiter::keyed),
            checks: AtomicU64::new(0),
            clock: DefaultClock::default(),
        }
    }

    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let Hosts::Only(allowed) = &self.hosts else {
            return true;
        };
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            // HTTP/1.0 without Host: not from a browser.
            return true;
        };
        host_name(host).is_some_and(|name| allowed.iter().any(|a| a.eq_ignore_ascii_case(name)))
    }

    /// How long until `key` may send again, or None when it may now.
    fn wait<K: std::hash::Hash + Eq + Clone>(
        &self,
        limiter: &Keyed<K>,
        key: &K,
    ) -> Option<std::time::Duration> {
        limiter
            .check_key(key)
            .err()
            .map(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    fn sweep(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            if let Some(l) = &self.per_ip {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
    }
}

/// The host part of a `Host` value (`name`, `name:port`, `[v6]:port`), lowercase comparison left to the caller.
fn host_name(value: &str) -> Option<&str> {
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split_once(']').map(|(h, _)| h);
    }
    let name = value.rsplit_once(':').map_or(value, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            value
        }
    });
    (!name.is_empty()).then_some(name)
}

/// The address a per-client bucket is kept for: IPv6 clients by their /64 (one host usually holds a whole
/// /64, so per-address buckets would be free to multiply).
fn client_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// `Retry-After`: whole seconds, rounded up, at least 1.
fn retry_after(wait: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1))
}

fn too_many(wait: std::time::Duration, what: &str) -> Response {
    let wait = retry_after(wait).as_secs();
    let mut resp = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests {what}; retry in {wait} s"),
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// The gate (see the module doc) for a request presenting the configured API token number `token` (None:
/// no valid token). The router calls it for every route but `/health` and `/ready`.
pub(crate) async fn check(g: &Guard, token: Option<usize>, req: Request, next: Next) -> Response {
    if !g.host_allowed(req.headers()) {
        return ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "unknown_host",
            "this server does not answer for that Host name (api.allowed_hosts)",
        )
        .into_response();
    }
    match (token, &g.per_token, &g.per_ip) {
        (Some(i), Some(limiter), _) => {
            if let Some(wait) = g.wait(limiter, &i) {
                return too_many(wait, "for this API token");
            }
        }
        (Some(_), None, _) => {}
        (None, _, Some(limiter)) => {
            // Requests made in-process (tests through `Router::oneshot`) carry no peer address.
            if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
                g.sweep();
                if let Some(wait) = g.wait(limiter, &client_key(peer.ip())) {
                    let parked = Parked::new(req.extensions().get::<ConnHandle>().cloned());
                    // The whole Retry-After (at least 1 s), at most MAX_HOLD: GCRA's exact wait is a
                    // few ms when many connections share one address's bucket.
                    tokio::time::sleep(MAX_HOLD.min(retry_after(wait))).await;
                    drop(parked);
                    return too_many(wait, "from this address");
                }
            }
        }
        (None, _, None) => {}
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(host_name("localhost:8080"), Some("localhost"));
        assert_eq!(host_name("127.0.0.1"), Some("127.0.0.1"));
        assert_eq!(host_name("[::1]:80"), Some("::1"));
        assert_eq!(host_name("evil.example"), Some("evil.example"));
        assert_eq!(host_name(""), None);
    }

    #[test]
    fn loopback_only_by_default_on_loopback() {
        let g = Guard::new(&ApiConfig::default());
        let with = |h: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_str(h).unwrap());
            m
        };
        assert!(g.host_allowed(&with("127.0.0.1:8080")));
        assert!(g.host_allowed(&with("LOCALHOST:1")));
        assert!(g.host_allowed(&with("[::1]:8080")));
        assert!(!g.host_allowed(&with("rebind.attacker.example:8080")));
        let any = Guard::new(&ApiConfig {
            listen: "0.0.0.0:8080".parse().unwrap(),
            ..ApiConfig::default()
        });
        assert!(any.host_allowed(&with("payouts.internal")));
    }

    #[test]
    fn v6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        let m: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(m), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
