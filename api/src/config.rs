//! `[api]` settings: listen address, bearer tokens (by reference to an environment variable or a file — never
//! inline), the manual-send limits, timeouts and page sizes.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use near_primitives::types::AccountId;
use payouts_store::Yocto;
use serde::{Deserialize, Deserializer};

use crate::explorer::check_explorer_url;

/// What a bearer token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `GET /status`, `/claims`, `/claims/{id}`, `/incidents` (unless `read_requires_token = false`) and
    /// `GET /metrics`.
    Read,
    /// `GET /metrics` only (a Prometheus scraper).
    Metrics,
    /// `POST /send-ft`.
    Send,
    /// `POST /admin/replay`.
    Admin,
    /// `POST /admin/campaigns/{id}/approve` and `…/reject`: the second person of a large payout.
    Approve,
}

impl Scope {
    /// The word used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Metrics => "metrics",
            Scope::Send => "send",
            Scope::Admin => "admin",
            Scope::Approve => "approve",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[api.tokens]]` entry. The secret itself comes from `token_env` or `token_file`, never from the
/// config file, and is never logged.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A label for logs and audit (`ops`, `ci`); not secret.
    pub name: String,
    /// What the token may do.
    pub scopes: Vec<Scope>,
    /// Name of the environment variable holding the token. Not `PAYOUTS_*`: that prefix is read as
    /// configuration overrides.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the token (surrounding whitespace is ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No secret here, only where it lives; still, keep it short.
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("token_env", &self.token_env)
            .field("token_file", &self.token_file)
            .finish()
    }
}

/// `[api]`: the HTTP server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on.
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// Bearer tokens (`[[api.tokens]]`).
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// When true (the default), `GET /status`, `/claims…` and `/incidents` need a token with the `read` scope.
    #[serde(default = "defaults::yes")]
    pub read_requires_token: bool,
    /// When true, `GET /metrics` answers without a token; else it needs the `metrics` or `read` scope.
    #[serde(default)]
    pub metrics_open: bool,
    /// `Host` header values (without port) the API answers; others get 421 (a DNS-rebinding page cannot
    /// read it). Empty: loopback names (`localhost`, `127.0.0.1`, `::1`) when `listen` is a loopback
    /// address, any host otherwise; `["*"]`: any host. `/health` and `/ready` answer any host.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Database connections of the API's own read pool (`/status`, `/claims`, `/metrics`, `/ready`), apart
    /// from the pool the distributor and manual sends use, so readers can never starve payouts.
    #[serde(default = "defaults::read_connections")]
    pub read_connections: usize,
    /// Open connections at most; a new one beyond that replaces the longest-idle connection (one between
    /// requests or still sending its headers), or is closed when every connection has a request in flight.
    /// Lowered at start to fit the process's file limit.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// A request's headers must arrive within this long of the connection waiting for them (a new
    /// connection, or a keep-alive one after its last answer), else the connection is closed.
    #[serde(default = "defaults::header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// A keep-alive connection with no request for this long is closed (0: no keep-alive).
    #[serde(default = "defaults::keep_alive_timeout_ms")]
    pub keep_alive_timeout_ms: u64,
    /// Requests per second per client address without a valid token (0: no limit); over it: 429 with
    /// `Retry-After`.
    #[serde(default = "defaults::rate_limit_ip_per_second")]
    pub rate_limit_ip_per_second: u32,
    /// Burst allowed per client address above that rate.
    #[serde(default = "defaults::rate_limit_ip_burst")]
    pub rate_limit_ip_burst: u32,
    /// Requests per second per API token (0: no limit).
    #[serde(default = "defaults::rate_limit_token_per_second")]
    pub rate_limit_token_per_second: u32,
    /// Burst allowed per API token above that rate.
    #[serde(default = "defaults::rate_limit_token_burst")]
    pub rate_limit_token_burst: u32,
    /// NEP-141 contracts `POST /send-ft` may pay from; the first is the default when a request names none.
    /// Empty: manual sends are refused.
    #[serde(default)]
    pub allowed_tokens: Vec<String>,
    /// Largest amount of one manual transfer, in the token's smallest unit (a decimal string).
    #[serde(
        default = "defaults::max_amount",
        deserialize_with = "deserialize_amount"
    )]
    pub max_amount: Yocto,
    /// Longest memo of a manual transfer, in characters (Unicode scalar values, what JSON Schema's
    /// `maxLength` counts; so at most four times as many bytes). `max_memo_bytes`, its former name, is
    /// still read.
    #[serde(default = "defaults::max_memo_chars", alias = "max_memo_bytes")]
    pub max_memo_chars: usize,
    /// Largest request body, in bytes (larger: 413).
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Most manual-send claim rows inserted by one statement (concurrent `POST /send-ft` requests are written
    /// together: one round trip and one commit per group).
    #[serde(default = "defaults::send_batch_max")]
    pub send_batch_max: usize,
    /// Workers writing those groups (each uses one database connection while writing).
    #[serde(default = "defaults::send_workers")]
    pub send_workers: usize,
    /// A request taking longer than this is answered 503 `timeout`.
    #[serde(default = "defaults::request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// `GET /ready` fails when the indexer is more than this many blocks behind the chain head (0: not checked).
    #[serde(default = "defaults::ready_max_lag_blocks")]
    pub ready_max_lag_blocks: u64,
    /// How long one call to the NEAR RPC (chain head) may take.
    #[serde(default = "defaults::rpc_timeout_ms")]
    pub rpc_timeout_ms: u64,
    /// How long `/status` figures (and the chain head) are reused before being read again.
    #[serde(default = "defaults::status_cache_ms")]
    pub status_cache_ms: u64,
    /// Page size of `GET /claims` when `limit` is not given.
    #[serde(default = "defaults::default_page_size")]
    pub default_page_size: u32,
    /// Largest `limit` of `GET /claims`.
    #[serde(default = "defaults::max_page_size")]
    pub max_page_size: u32,
    /// Largest block range of one `POST /admin/replay`.
    #[serde(default = "defaults::max_replay_blocks")]
    pub max_replay_blocks: u64,
    /// Per token contract: a campaign whose total is above this (smallest unit, a decimal string) waits for a
    /// token with the `approve` scope other than its creator's. A token not listed needs no approval.
    #[serde(default)]
    pub approval_threshold: std::collections::BTreeMap<String, Yocto>,
    /// A single `POST /send-ft` above this amount (any token) waits for approval likewise: its claim is held in
    /// a one-row campaign of kind `send` (answer `status: awaiting_approval`, `campaign_id`).
    #[serde(default)]
    pub single_approval_threshold: Option<Yocto>,
    /// Largest campaign file, in bytes (larger: 413).
    #[serde(default = "defaults::campaign_max_bytes")]
    pub campaign_max_bytes: u64,
    /// Most rows of one campaign file.
    #[serde(default = "defaults::campaign_max_rows")]
    pub campaign_max_rows: u64,
    /// `POST /campaigns` taking longer than this is answered 503 `timeout` (the store pass still finishes
    /// or rolls back as a whole).
    #[serde(default = "defaults::campaign_timeout_ms")]
    pub campaign_timeout_ms: u64,
    /// NEAR RPC calls in flight at once while one upload checks its receivers' registrations
    /// (`storage_balance_of`, only when the distributor does not register receivers), 1 to 64.
    #[serde(default = "defaults::campaign_rpc_concurrency")]
    pub campaign_rpc_concurrency: usize,
    /// Where the dashboard links a transaction hash: an http(s) URL with `{hash}` where the hash goes, e.g.
    /// `https://nearblocks.io/txns/{hash}`. Unset: by the network's chain id (mainnet
    /// `https://nearblocks.io/txns/{hash}`, testnet `https://testnet.nearblocks.io/txns/{hash}`, any other
    /// chain no links); `""`: no links.
    #[serde(default)]
    pub explorer_tx_url: Option<String>,
}

mod defaults {
    use std::net::SocketAddr;

    use payouts_store::Yocto;

    pub fn yes() -> bool {
        true
    }
    pub fn read_connections() -> usize {
        4
    }
    pub fn max_connections() -> usize {
        512
    }
    pub fn header_read_timeout_ms() -> u64 {
        5_000
    }
    pub fn keep_alive_timeout_ms() -> u64 {
        5_000
    }
    pub fn rate_limit_ip_per_second() -> u32 {
        20
    }
    pub fn rate_limit_ip_burst() -> u32 {
        40
    }
    pub fn rate_limit_token_per_second() -> u32 {
        2_000
    }
    pub fn rate_limit_token_burst() -> u32 {
        4_000
    }
    pub fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }
    pub fn max_amount() -> Yocto {
        // 1,000 whole tokens of a 24-decimal token.
        Yocto(1_000 * 10u128.pow(24))
    }
    pub fn max_memo_chars() -> usize {
        256
    }
    pub fn max_body_bytes() -> usize {
        16 * 1024
    }
    pub fn send_batch_max() -> usize {
        256
    }
    pub fn send_workers() -> usize {
        2
    }
    pub fn request_timeout_ms() -> u64 {
        10_000
    }
    pub fn ready_max_lag_blocks() -> u64 {
        600
    }
    pub fn rpc_timeout_ms() -> u64 {
        1_000
    }
    pub fn status_cache_ms() -> u64 {
        1_000
    }
    pub fn default_page_size() -> u32 {
        50
    }
    pub fn max_page_size() -> u32 {
        500
    }
    pub fn max_replay_blocks() -> u64 {
        100_000
    }
    pub fn campaign_max_bytes() -> u64 {
        256 * 1024 * 1024
    }
    pub fn campaign_max_rows() -> u64 {
        1_000_000
    }
    pub fn campaign_timeout_ms() -> u64 {
        600_000
    }
    pub fn campaign_rpc_concurrency() -> usize {
        8
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: defaults::listen(),
            tokens: vec![],
            read_requires_token: true,
            metrics_open: false,
            allowed_hosts: vec![],
            read_connections: defaults::read_connections(),
            max_connections: defaults::max_connections(),
            header_read_timeout_ms: defaults::header_read_timeout_ms(),
            keep_alive_timeout_ms: defaults::keep_alive_timeout_ms(),
            rate_limit_ip_per_second: defaults::rate_limit_ip_per_second(),
            rate_limit_ip_burst: defaults::rate_limit_ip_burst(),
            rate_limit_token_per_second: defaults::rate_limit_token_per_second(),
            rate_limit_token_burst: defaults::rate_limit_token_burst(),
            allowed_tokens: vec![],
            max_amount: defaults::max_amount(),
            max_memo_chars: defaults::max_memo_chars(),
            max_body_bytes: defaults::max_body_bytes(),
            send_batch_max: defaults::send_batch_max(),
            send_workers: defaults::send_workers(),
            request_timeout_ms: defaults::request_timeout_ms(),
            ready_max_lag_blocks: defaults::ready_max_lag_blocks(),
            rpc_timeout_ms: defaults::rpc_timeout_ms(),
            status_cache_ms: defaults::status_cache_ms(),
            default_page_size: defaults::default_page_size(),
            max_page_size: defaults::max_page_size(),
            max_replay_blocks: defaults::max_replay_blocks(),
            approval_threshold: Default::default(),
            single_approval_threshold: None,
            campaign_max_bytes: defaults::campaign_max_bytes(),
            campaign_max_rows: defaults::campaign_max_rows(),
            campaign_timeout_ms: defaults::campaign_timeout_ms(),
            campaign_rpc_concurrency: defaults::campaign_rpc_concurrency(),
            explorer_tx_url: None,
        }
    }
}

/// Accepts the amount as a string (the documented form) or as an integer (what an environment variable
/// override such as `PAYOUTS_API__MAX_AMOUNT=1000` turns into).
fn deserialize_amount<'de, D: Deserializer<'de>>(d: D) -> Result<Yocto, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Int(u64),
    }
    match Raw::deserialize(d)? {
        Raw::Text(s) => Yocto::from_str(&s).map_err(serde::de::Error::custom),
        Raw::Int(v) => Ok(Yocto(u128::from(v))),
    }
}

/// The shortest token accepted, in bytes: shorter secrets are guessable.
pub const MIN_TOKEN_BYTES: usize = 16;

impl ApiConfig {
    /// Checks every value without reading any secret; the message names the key (`api.…`).
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=64).contains(&self.campaign_rpc_concurrency) {
            return Err("api.campaign_rpc_concurrency: must be between 1 and 64".into());
        }
        if self.max_amount.0 == 0 {
            return Err("api.max_amount: must be more than 0".into());
        }
        if self.max_memo_chars == 0 || self.max_memo_chars > 1024 {
            return Err("api.max_memo_chars: must be between 1 and 1024".into());
        }
        if self.max_body_bytes < 256 || self.max_body_bytes > 16 * 1024 * 1024 {
            return Err("api.max_body_bytes: must be between 256 and 16777216".into());
        }
        if self.send_batch_max == 0 || self.send_batch_max > 1000 {
            return Err("api.send_batch_max: must be between 1 and 1000".into());
        }
        if self.send_workers == 0 || self.send_workers > 64 {
            return Err("api.send_workers: must be between 1 and 64".into());
        }
        if self.request_timeout_ms == 0 {
            return Err("api.request_timeout_ms: must be more than 0".into());
        }
        if self.rpc_timeout_ms == 0 {
            return Err("api.rpc_timeout_ms: must be more than 0".into());
        }
        if self.max_page_size == 0 || self.max_page_size > 10_000 {
            return Err("api.max_page_size: must be between 1 and 10000".into());
        }
        if self.default_page_size == 0 || self.default_page_size > self.max_page_size {
            return Err("api.default_page_size: must be between 1 and api.max_page_size".into());
        }
        if self.read_connections == 0 || self.read_connections > 64 {
            return Err("api.read_connections: must be between 1 and 64".into());
        }
        if self.max_connections < 8 || self.max_connections > 1_000_000 {
            return Err("api.max_connections: must be between 8 and 1000000".into());
        }
        if self.header_read_timeout_ms == 0 || self.header_read_timeout_ms > 600_000 {
            return Err("api.header_read_timeout_ms: must be between 1 and 600000".into());
        }
        if self.rate_limit_ip_per_second > 0 && self.rate_limit_ip_burst == 0 {
            return Err("api.rate_limit_ip_burst: must be more than 0 when api.rate_limit_ip_per_second is set".into());
        }
        if self.rate_limit_token_per_second > 0 && self.rate_limit_token_burst == 0 {
            return Err("api.rate_limit_token_burst: must be more than 0 when api.rate_limit_token_per_second is set".into());
        }
        for (i, host) in self.allowed_hosts.iter().enumerate() {
            let ok = host == "*"
                || (!host.is_empty()
                    && host.len() <= 253
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)));
            if !ok {
                return Err(format!(
                    "api.allowed_hosts[{i}]: `{host}` is not a host name or address (no port, no scheme), or \"*\""
                ));
            }
        }
        if let Some(url) = &self.explorer_tx_url {
            check_explorer_url(url).map_err(|why| format!("api.explorer_tx_url: {why}"))?;
        }
        if self.max_replay_blocks == 0 {
            return Err("api.max_replay_blocks: must be more than 0".into());
        }
        for (i, token) in self.allowed_tokens.iter().enumerate() {
            if AccountId::from_str(token).is_err() {
                return Err(format!(
                    "api.allowed_tokens[{i}]: `{token}` is not a valid NEAR account id"
                ));
            }
            if self.allowed_tokens[..i].contains(token) {
                return Err(format!(
                    "api.allowed_tokens[{i}]: `{token}` is listed twice"
                ));
            }
        }
        for (i, token) in self.tokens.iter().enumerate() {
            let key = format!("api.tokens[{i}]");
            let name = token.name.trim();
            if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "{key}.name: must be 1 to 64 printable ASCII characters without spaces"
                ));
            }
            if self.tokens[..i].iter().any(|t| t.name == token.name) {
                return Err(format!("{key}.name: `{name}` is used twice"));
            }
            if token.scopes.is_empty() {
                return Err(format!(
                    "{key}.scopes: name at least one of \"read\", \"metrics\", \"send\", \"admin\""
                ));
            }
            match (&token.token_env, &token.token_file) {
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "{key}: set only one of token_env and token_file"
                    ))
                }
                (None, None) => {
                    return Err(format!(
                        "{key}: set token_env (an environment variable name) or token_file; tokens are never written in the config file"
                    ))
                }
                (Some(var), None) if var.trim().is_empty() => {
                    return Err(format!("{key}.token_env: must not be empty"))
                }
                (Some(var), None) if var.to_ascii_uppercase().starts_with("PAYOUTS_") => {
                    return Err(format!(
                        "{key}.token_env: `{var}` starts with PAYOUTS_, which is reserved for config overrides; use another name, e.g. NEAR_PAYOUTS_OPS_TOKEN"
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }
}
