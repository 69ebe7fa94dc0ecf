//! `[webhooks]` and `[[webhooks.endpoints]]`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What an endpoint can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum EventType {
    /// A claim row was created (found on chain, `POST /send-ft`, a campaign row) — for a claim held for
    /// approval, when it is approved (never before, never twice).
    #[serde(rename = "claim.created")]
    ClaimCreated,
    /// A claim was put in a signed transaction and sent (again, after a dead transaction).
    #[serde(rename = "claim.submitted")]
    ClaimSubmitted,
    /// A claim was paid: its transfer succeeded on chain. Final.
    #[serde(rename = "claim.confirmed")]
    ClaimConfirmed,
    /// A claim failed for good, with a reason. Final.
    #[serde(rename = "claim.failed")]
    ClaimFailed,
    /// A distributor process stopped sending (low balance, guard, RPC down…), or its reason changed.
    #[serde(rename = "distributor.paused")]
    DistributorPaused,
    /// A payment on chain the store did not expect was recorded as an incident; its token is paused until
    /// an admin clears it.
    #[serde(rename = "incident.opened")]
    IncidentOpened,
    /// A campaign (or a single send held for approval) was approved by a second token: its claims are
    /// payable now (each sends its `claim.created` at that moment).
    #[serde(rename = "campaign.approved")]
    CampaignApproved,
    /// A campaign awaiting approval was rejected: its claims will never be paid.
    #[serde(rename = "campaign.rejected")]
    CampaignRejected,
}

impl EventType {
    /// Every type.
    pub const ALL: [EventType; 8] = [
        EventType::ClaimCreated,
        EventType::ClaimSubmitted,
        EventType::ClaimConfirmed,
        EventType::ClaimFailed,
        EventType::DistributorPaused,
        EventType::IncidentOpened,
        EventType::CampaignApproved,
        EventType::CampaignRejected,
    ];

    /// The wire name (`claim.created`, …), also stored in the outbox.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ClaimCreated => "claim.created",
            EventType::ClaimSubmitted => "claim.submitted",
            EventType::ClaimConfirmed => "claim.confirmed",
            EventType::ClaimFailed => "claim.failed",
            EventType::DistributorPaused => "distributor.paused",
            EventType::IncidentOpened => "incident.opened",
            EventType::CampaignApproved => "campaign.approved",
            EventType::CampaignRejected => "campaign.rejected",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[webhooks]`: delivery settings shared by every endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// `[[webhooks.endpoints]]`: none by default.
    #[serde(default)]
    pub endpoints: Vec<EndpointConfig>,
    /// Requests per delivery before it is marked dead.
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: u32,
    /// Wait after the first failure; it doubles after each further one (with jitter: a random 50–100 %).
    #[serde(default = "defaults::initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Longest wait between two attempts.
    #[serde(default = "defaults::max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// A request without a complete answer within this is a failed attempt.
    #[serde(default = "defaults::request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// How often an idle endpoint looks for new rows in the outbox.
    #[serde(default = "defaults::poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// An endpoint is delivered by one process at a time; its lease lasts this long without renewal.
    #[serde(default = "defaults::lease_ttl_ms")]
    pub lease_ttl_ms: u64,
    /// Delivered rows are deleted after this many hours (`0`: kept). Dead rows are always kept.
    #[serde(default = "defaults::retention_hours")]
    pub retention_hours: u64,
}

/// One receiver.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Unique name (letters, digits, `_`, `.`, `-`), used in logs, `/status` and metrics.
    pub name: String,
    /// `http://` or `https://` URL the events are POSTed to. Redirects are not followed.
    pub url: String,
    /// Name of the environment variable holding the signing secret (at least 16 bytes).
    pub secret_env: String,
    /// Event types it wants; at least one.
    pub events: Vec<EventType>,
    /// Requests in flight at once. `1` (default) delivers strictly one after another in creation order;
    /// more starts them in creation order but lets them overlap.
    #[serde(default = "defaults::max_in_flight")]
    pub max_in_flight: usize,
}

impl fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry credentials (user info, query tokens): show its origin only.
        f.debug_struct("EndpointConfig")
            .field("name", &self.name)
            .field("url", &redacted_url(&self.url))
            .field("secret_env", &self.secret_env)
            .field("events", &self.events)
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

/// `scheme://host[:port]` of `url`, without user info, path or query: safe to log.
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{}://{h}:{p}/…", u.scheme()),
            (Some(h), None) => format!("{}://{h}/…", u.scheme()),
            _ => "<url without host>".into(),
        },
        Err(_) => "<invalid url>".into(),
    }
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            max_attempts: defaults::max_attempts(),
            initial_backoff_ms: defaults::initial_backoff_ms(),
            max_backoff_ms: defaults::max_backoff_ms(),
            request_timeout_ms: defaults::request_timeout_ms(),
            poll_interval_ms: defaults::poll_interval_ms(),
            lease_ttl_ms: defaults::lease_ttl_ms(),
            retention_hours: defaults::retention_hours(),
        }
    }
}

mod defaults {
    pub fn max_attempts() -> u32 {
        12
    }
    pub fn initial_backoff_ms() -> u64 {
        1_000
    }
    pub fn max_backoff_ms() -> u64 {
        15 * 60 * 1_000
    }
    pub fn request_timeout_ms() -> u64 {
        10_000
    }
    pub fn poll_interval_ms() -> u64 {
        250
    }
    pub fn lease_ttl_ms() -> u64 {
        30_000
    }
    pub fn retention_hours() -> u64 {
        7 * 24
    }
    pub fn max_in_flight() -> usize {
        1
    }
}

/// Shortest signing secret accepted.
pub const MIN_SECRET_BYTES: usize = 16;

impl WebhooksConfig {
    /// Checks everything that does not need the environment; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("webhooks.max_attempts must be at least 1".into());
        }
        if self.initial_backoff_ms == 0 || self.max_backoff_ms < self.initial_backoff_ms {
            return Err(
                "webhooks.initial_backoff_ms must be > 0 and at most webhooks.max_backoff_ms"
                    .into(),
            );
        }
        for (key, v) in [
            ("request_timeout_ms", self.request_timeout_ms),
            ("poll_interval_ms", self.poll_interval_ms),
            ("lease_ttl_ms", self.lease_ttl_ms),
        ] {
            if v == 0 {
                return Err(format!("webhooks.{key} must be > 0"));
            }
        }
        if self.lease_ttl_ms <= self.request_timeout_ms {
            return Err(
                "webhooks.lease_ttl_ms must be longer than webhooks.request_timeout_ms".into(),
            );
        }
        let mut names = std::collections::HashSet::new();
        for (i, e) in self.endpoints.iter().enumerate() {
            let at = format!("webhooks.endpoints[{i}]");
            let name_ok = !e.name.is_empty()
                && e.name.len() <= 63
                && e.name.starts_with(|c: char| c.is_ascii_alphanumeric())
                && e.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !name_ok {
                return Err(format!(
                    "{at}.name {:?}: use 1-63 letters, digits, '_', '.', '-', starting with a letter or digit",
                    e.name
                ));
            }
            if !names.insert(e.name.as_str()) {
                return Err(format!("{at}.name {:?} is used twice", e.name));
            }
            match url::Url::parse(&e.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                _ => {
                    return Err(format!(
                        "{at}.url must be an http:// or https:// URL with a host"
                    ))
                }
            }
            if e.secret_env.trim().is_empty() {
                return Err(format!(
                    "{at}.secret_env must name the environment variable holding the signing secret"
                ));
            }
            if e.events.is_empty() {
                return Err(format!(
                    "{at}.events is empty; choose from {}",
                    EventType::ALL.map(EventType::as_str).join(", ")
                ));
            }
            if e.max_in_flight == 0 || e.max_in_flight > 64 {
                return Err(format!("{at}.max_in_flight must be between 1 and 64"));
            }
        }
        Ok(())
    }
}

/// A signing secret: never printed.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps raw bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The bytes, for signing.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl EndpointConfig {
    /// Reads the signing secret from `secret_env`. The error names the variable, never a value.
    pub fn secret(&self) -> Result<Secret, String> {
        match std::env::var(&self.secret_env) {
            Ok(v) if v.len() >= MIN_SECRET_BYTES => Ok(Secret::new(v.into_bytes())),
            Ok(_) => Err(format!(
                "webhook endpoint {:?}: the secret in ${} is shorter than {MIN_SECRET_BYTES} bytes",
                self.name, self.secret_env
            )),
            Err(_) => Err(format!(
                "webhook endpoint {:?}: environment variable ${} (secret_env) is not set",
                self.name, self.secret_env
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> EndpointConfig {
        EndpointConfig {
            name: "backend".into(),
            url: "https://user:pw@hooks.example.com/in?token=abc".into(),
            secret_env: "X".into(),
            events: vec![EventType::ClaimConfirmed],
            max_in_flight: 1,
        }
    }

    #[test]
    fn debug_hides_url_credentials() {
        let shown = format!("{:?}", endpoint());
        assert!(shown.contains("https://hooks.example.com/…"), "{shown}");
        assert!(!shown.contains("pw") && !shown.contains("abc"), "{shown}");
        assert_eq!(format!("{:?}", Secret::new("s3cret")), "Secret([redacted])");
    }

    #[test]
    fn validation_names_the_key() {
        let ok = WebhooksConfig {
            endpoints: vec![endpoint()],
            ..WebhooksConfig::default()
        };
        ok.validate().unwrap();
        type Breaker = fn(&mut WebhooksConfig);
        let cases: [(Breaker, &str); 6] = [
            (|c| c.endpoints[0].name = "bad name".into(), ".name"),
            (|c| c.endpoints[0].url = "ftp://x".into(), ".url"),
            (|c| c.endpoints[0].events.clear(), ".events"),
            (|c| c.endpoints[0].secret_env = " ".into(), ".secret_env"),
            (|c| c.endpoints.push(c.endpoints[0].clone()), "used twice"),
            (|c| c.max_attempts = 0, "max_attempts"),
        ];
        for (break_it, key) in cases {
            let mut c = ok.clone();
            break_it(&mut c);
            let err = c.validate().unwrap_err();
            assert!(err.contains(key), "{err} should name {key}");
        }
    }

    #[test]
    fn event_names_round_trip() {
        for t in EventType::ALL {
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{t}\""));
            assert_eq!(serde_json::from_str::<EventType>(&json).unwrap(), t);
        }
    }
}
