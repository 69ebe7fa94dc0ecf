//! `[[network.rpc]]` entries, their errors, and URLs without secrets.

use std::collections::BTreeMap;

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
