//! The one typed configuration value, built at start-up from a TOML file and `PAYOUTS_*` environment
//! variables (nested keys joined with `__`, e.g. `PAYOUTS_DATABASE__URL`), then validated.
//! `DATABASE_URL` is also honoured for `database.url`, below `PAYOUTS_DATABASE__URL`.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use payouts_api::ApiConfig;
use payouts_devnet::DevnetConfig;
use payouts_distributor::DistributorConfig;
use payouts_indexer::IndexerConfig;
use payouts_near::{redact_url, RpcEndpointConfig, RpcPool};
use payouts_store::DbConfig;
use payouts_webhooks::WebhooksConfig;
use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[database]`: required by every role but `devnet`.
    #[serde(default)]
    database: Option<DbConfig>,
    /// `[network]`
    #[serde(default)]
    pub network: NetworkConfig,
    /// `[api]` (with `[[api.tokens]]`): the HTTP API and dashboard.
    #[serde(default)]
    pub api: ApiConfig,
    /// `[log]`
    #[serde(default)]
    pub log: LogConfig,
    /// `[indexer]` (with `[indexer.source]` and `[[indexer.rules]]`)
    #[serde(default)]
    pub indexer: IndexerConfig,
    /// `[devnet]`: the local chain of `payouts devnet` / `payouts dev`.
    #[serde(default)]
    pub devnet: DevnetConfig,
    /// `[distributor]`: treasury keys, batching, guards.
    #[serde(default)]
    pub distributor: DistributorConfig,
    /// `[webhooks]` (with `[[webhooks.endpoints]]`): signed notifications of claim events.
    #[serde(default)]
    pub webhooks: WebhooksConfig,
}

/// `[network]`: which NEAR network to talk to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// `mainnet`, `testnet`, `devnet` or any chain id the node reports.
    #[serde(default = "defaults::chain_id")]
    pub chain_id: String,
    /// One JSON-RPC endpoint (default `http://127.0.0.1:3030`). Use `[[network.rpc]]` for several, or for
    /// API keys in headers; not both.
    #[serde(default)]
    pub rpc_url: Option<String>,
    /// `[[network.rpc]]`: a pool of endpoints with failover, weights, rate limits and header keys
    /// (distributor/src/rpc.rs).
    #[serde(default)]
    pub rpc: Vec<RpcEndpointConfig>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            chain_id: defaults::chain_id(),
            rpc_url: None,
            rpc: Vec::new(),
        }
    }
}

impl NetworkConfig {
    /// The endpoints to use: `[[network.rpc]]`, else `rpc_url` (or its default) alone.
    pub fn endpoints(&self) -> Vec<RpcEndpointConfig> {
        if self.rpc.is_empty() {
            vec![RpcEndpointConfig::new(
                self.rpc_url.clone().unwrap_or_else(defaults::rpc_url),
            )]
        } else {
            self.rpc.clone()
        }
    }

    /// The endpoints as logs may show them: names, never URLs' secrets.
    pub fn shown(&self) -> String {
        self.endpoints()
            .iter()
            .map(|e| e.name.clone().unwrap_or_else(|| redact_url(&e.url)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Points every role at one endpoint (`payouts dev`: the in-process devnet).
    pub fn set_single(&mut self, url: String) {
        self.rpc_url = Some(url);
        self.rpc.clear();
    }
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    #[serde(default = "defaults::log_format")]
    pub format: LogFormat,
    /// A tracing filter such as `info` or `payouts_indexer=debug,info`; `RUST_LOG` wins when set.
    #[serde(default = "defaults::log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: defaults::log_format(),
            level: defaults::log_level(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

mod defaults {
    use super::LogFormat;

    pub fn chain_id() -> String {
        "devnet".into()
    }
    pub fn rpc_url() -> String {
        "http://127.0.0.1:3030".into()
    }
    pub fn log_format() -> LogFormat {
        LogFormat::Text
    }
    pub fn log_level() -> String {
        "info".into()
    }
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "payouts.toml";

impl Config {
    /// Loads `path` (or `payouts.toml` when present), applies the environment, validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let file: Option<PathBuf> = match path {
            Some(p) if !p.is_file() => {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    p.display()
                )));
            }
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()),
        };
        let mut figment = Figment::new();
        if let Some(file) = &file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database.url".into()),
            )
            // PAYOUTS_API_TOKEN is `payouts campaign`'s bearer token, not a setting.
            .merge(
                Env::prefixed("PAYOUTS_")
                    .ignore(&["CONFIG", "API_TOKEN"])
                    .split("__"),
            );
        let mut config: Config = figment.extract().map_err(|e| ConfigError(describe(e)))?;
        if config.distributor.indexer_stream.is_none() {
            // The distributor proves transactions dead from this stream's cursor.
            config.distributor.indexer_stream = Some(config.indexer.stream.clone());
        }
        config.validate()?;
        Ok(config)
    }

    /// The database settings, or the configuration error a role that needs them reports.
    pub fn database(&self) -> Result<&DbConfig, ConfigError> {
        self.database.as_ref().ok_or_else(|| {
            ConfigError(
                "database.url: is missing (set it in the config file, PAYOUTS_DATABASE__URL or DATABASE_URL)".into(),
            )
        })
    }

    /// Replaces `[database]` (used by `payouts dev` for its throwaway cluster).
    pub fn set_database(&mut self, db: DbConfig) {
        self.database = Some(db);
    }

    /// Logs the effective settings (never secrets) at start-up.
    pub fn log_summary(&self) {
        tracing::debug!(
            database = %self.database.as_ref().map_or_else(|| "-".to_string(), |d| d.url.to_string()),
            chain_id = %self.network.chain_id,
            rpc = %self.network.shown(),
            api_listen = %self.api.listen,
            "configuration loaded"
        );
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(db) = &self.database {
            db.validate().map_err(ConfigError)?;
        }
        if let Some(rpc) = &self.network.rpc_url {
            if !self.network.rpc.is_empty() {
                return Err(ConfigError(
                    "network.rpc_url: set either rpc_url or [[network.rpc]] endpoints, not both"
                        .into(),
                ));
            }
            if !(rpc.starts_with("http://") || rpc.starts_with("https://")) {
                return Err(ConfigError(format!(
                    "network.rpc_url: `{}` is not an http(s) URL",
                    redact_url(rpc)
                )));
            }
        }
        // Builds the pool once: bad URLs, header variables not set, duplicate names.
        RpcPool::new(&self.network.endpoints()).map_err(|e| ConfigError(e.to_string()))?;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(ConfigError(format!(
                "log.level: `{}` is not a valid filter: {e}",
                self.log.level
            )));
        }
        if self.network.chain_id.trim().is_empty() {
            return Err(ConfigError("network.chain_id: must not be empty".into()));
        }
        self.indexer.validate().map_err(ConfigError)?;
        self.api.validate().map_err(ConfigError)?;
        self.distributor.validate().map_err(ConfigError)?;
        self.webhooks.validate().map_err(ConfigError)?;
        Ok(())
    }
}

/// One line per problem: `key.path: what is wrong`.
fn describe(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            let mut key = e.path.join(".");
            let what = match &e.kind {
                figment::error::Kind::MissingField(field) => {
                    key = if key.is_empty() {
                        field.to_string()
                    } else {
                        format!("{key}.{field}")
                    };
                    // No [database] at all: the one thing it needs is the URL.
                    if key == "database" {
                        key = "database.url".into();
                    }
                    let hint = if key == "database.url" {
                        " (set it in the config file, PAYOUTS_DATABASE__URL or DATABASE_URL)"
                    } else {
                        ""
                    };
                    format!("is missing{hint}")
                }
                figment::error::Kind::UnknownField(field, _) => {
                    key = if key.is_empty() {
                        field.to_string()
                    } else {
                        format!("{key}.{field}")
                    };
                    "is not a known setting".to_string()
                }
                other => other.to_string(),
            };
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            if key.is_empty() {
                format!("{what}{source}")
            } else {
                format!("{key}: {what}{source}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}
