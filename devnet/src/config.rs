//! Devnet configuration: one typed value, deserialized from the `[devnet]` table of the payouts
//! TOML (or built in code by tests), with defaults close to a nearcore localnet.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// One teragas, in gas units.
pub const TGAS: u64 = 1_000_000_000_000;

/// The protocol version the devnet reports (`status`, `EXPERIMENTAL_protocol_config`, block
/// headers): mainnet's since 2025, the first with 1 PGas of prepaid gas per transaction.
pub const DEVNET_PROTOCOL_VERSION: u32 = 83;

/// Everything `Devnet::start` needs. Every field has a default (`DevnetConfig::default()`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevnetConfig {
    /// Address of the single HTTP port (JSON-RPC on `POST /`, neardata on `GET /v0/...`).
    /// Use port 0 to let the OS pick one (tests).
    pub listen: SocketAddr,
    /// Time between two blocks, in milliseconds (default 600: mainnet's pace).
    pub block_time_ms: u64,
    /// Genesis TOML file; `None` uses the built-in genesis (see `genesis` module docs).
    pub genesis: Option<PathBuf>,
    /// Directory the key files are written to. `None`: a fresh directory under the system temp
    /// directory, unique per process and port.
    pub key_dir: Option<PathBuf>,
    /// Gas limit of the single shard's chunk, per block, in gas units (default 1,000 Tgas).
    /// As on nearcore it is also the chunk's *compute* limit: receipts are admitted while the
    /// compute used is below it (the last one may overshoot), and storage operations cost about
    /// 3× more compute than gas, so a chunk of token transfers is full before its gas is.
    pub gas_limit: u64,
    /// Lift the per-block gas limit entirely (benchmarks).
    pub lift_gas_limit: bool,
    /// Maximum prepaid gas of one transaction (default 1 PGas, protocol 83+; 300 Tgas before).
    pub max_tx_gas: u64,
    /// Transaction validity period, in blocks (default 86,400: mainnet's and testnet's; a
    /// nearcore localnet uses 100). Tests may shorten it; the rule stays nearcore's.
    pub validity_period: u64,
    /// Simulated nodes behind the RPC URL, each with its own view of the chain and its own pool
    /// (see `chain::front`). Default 3.
    pub nodes: usize,
    /// How far a node's head may lag the producer's, in blocks (drawn per node and block).
    /// Default 2.
    pub max_node_lag_blocks: u64,
    /// How many past blocks keep their state readable by `query` (older: `GARBAGE_COLLECTED_BLOCK`).
    pub state_history_blocks: usize,
    /// How long `send_tx` / `tx` wait for the requested `wait_until` before answering HTTP 408.
    pub rpc_timeout_ms: u64,
    /// How long `GET /v0/block/{h}` long-polls for a height that is not final yet.
    pub neardata_poll_ms: u64,
    /// If set, final blocks are also written in the Lake S3 layout
    /// (`{height:012}/block.json`, `{height:012}/shard_0.json`) under this directory.
    pub lake_dir: Option<PathBuf>,
    /// Congestion-control thresholds; each unset one is the runtime config's (mainnet).
    pub congestion: CongestionOverrides,
    /// Fault knobs (can be changed at run time through `DevnetHandle::set_faults`).
    pub faults: Faults,
    /// Built-in load generator of user `claim` calls.
    pub load: LoadConfig,
    /// Per-token contract gas: token → gas its `ft_transfer` burns, replacing the genesis value
    /// (`[devnet.ft_transfer_gas]`, e.g. `"heavy.devnet" = 6000000000000`). A call attaching less
    /// fails with "Exceeded the prepaid gas.".
    pub ft_transfer_gas: std::collections::BTreeMap<String, u64>,
    /// How many generated users (`user-N.devnet`, every even one registered with the tokens) the
    /// built-in genesis has, replacing its 1,000: benchmarks paying many distinct receivers.
    pub users: Option<u32>,
}

impl Default for DevnetConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3030)),
            block_time_ms: 600,
            genesis: None,
            key_dir: None,
            gas_limit: 1_000 * TGAS,
            lift_gas_limit: false,
            max_tx_gas: 1_000 * TGAS,
            validity_period: 86_400,
            nodes: 3,
            max_node_lag_blocks: 2,
            state_history_blocks: crate::state::DEFAULT_HISTORY_BLOCKS,
            rpc_timeout_ms: 10_000,
            neardata_poll_ms: 5_000,
            lake_dir: None,
            congestion: CongestionOverrides::default(),
            faults: Faults::default(),
            load: LoadConfig::default(),
            ft_transfer_gas: std::collections::BTreeMap::new(),
            users: None,
        }
    }
}

impl DevnetConfig {
    /// A configuration for in-process tests: random port, fast blocks, short timeouts.
    pub fn for_tests() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            block_time_ms: 50,
            rpc_timeout_ms: 3_000,
            neardata_poll_ms: 1_000,
            ..Self::default()
        }
    }

    /// The per-block gas limit in force, `None` when lifted.
    pub fn effective_gas_limit(&self) -> Option<u64> {
        (!self.lift_gas_limit).then_some(self.gas_limit)
    }
}

/// Congestion-control thresholds that replace the runtime config's (nearcore's NEP-539 values,
/// core/parameters/res/runtime_configs/68.yaml, 73.yaml, 79.yaml). Tests lower them to reach
/// congestion with little load; `EXPERIMENTAL_protocol_config` reports the values in force.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CongestionOverrides {
    /// Delayed-receipt gas that is 100 % incoming congestion (mainnet 400 PGas).
    pub max_congestion_incoming_gas: Option<u64>,
    /// Delayed-receipt bytes that are 100 % memory congestion (mainnet 1,000 MB).
    pub max_congestion_memory_consumption: Option<u64>,
    /// Missed chunks in a row that are 100 % congestion (mainnet 125).
    pub max_congestion_missed_chunks: Option<u64>,
    /// Congestion level at which new transactions are rejected, in percent (mainnet 80).
    pub reject_tx_congestion_threshold_percent: Option<u8>,
    /// Transaction-conversion gas budget per chunk without congestion (mainnet 500 Tgas).
    pub max_tx_gas: Option<u64>,
    /// That budget at full incoming congestion (mainnet 20 Tgas).
    pub min_tx_gas: Option<u64>,
}

impl CongestionOverrides {
    /// `fees` with these thresholds in its runtime config.
    pub fn apply(&self, mut fees: crate::fees::Fees) -> crate::fees::Fees {
        use near_primitives::types::Gas;
        let c = &mut fees.runtime_config_mut().congestion_control_config;
        if let Some(v) = self.max_congestion_incoming_gas {
            c.max_congestion_incoming_gas = Gas::from_gas(v);
        }
        if let Some(v) = self.max_congestion_memory_consumption {
            c.max_congestion_memory_consumption = v;
        }
        if let Some(v) = self.max_congestion_missed_chunks {
            c.max_congestion_missed_chunks = v;
        }
        if let Some(v) = self.reject_tx_congestion_threshold_percent {
            c.reject_tx_congestion_threshold = f64::from(v.min(100)) / 100.0;
        }
        if let Some(v) = self.max_tx_gas {
            c.max_tx_gas = Gas::from_gas(v);
        }
        if let Some(v) = self.min_tx_gas {
            c.min_tx_gas = Gas::from_gas(v);
        }
        fees
    }
}

/// Fault knobs. Shares are probabilities in `[0, 1]` drawn from a seeded RNG, so a test run is
/// reproducible for a given seed and request sequence.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Share of valid transactions silently dropped at chunk production (never on chain; the
    /// client only sees a timeout).
    pub drop_tx_share: f64,
    /// Share of JSON-RPC calls answered with HTTP 408 `TIMEOUT_ERROR`. The call is still
    /// processed (a sent transaction does reach the pool): only the answer is lost.
    pub rpc_timeout_share: f64,
    /// Share of JSON-RPC calls answered with HTTP 500 without being processed.
    pub rpc_5xx_share: f64,
    /// Extra delay added to every block interval, in milliseconds.
    pub block_delay_ms: u64,
    /// Delay before every neardata (`/v0/…`) answer, in milliseconds: a block source far away, as a
    /// public neardata endpoint is (tens of milliseconds a request) where the devnet is local.
    pub neardata_delay_ms: u64,
    /// Share of transactions lost while a node forwards them to the chunk producer.
    pub forward_drop_share: f64,
    /// Share of forwarded transactions that reach the chunk producer one block late (so two
    /// transactions of one key can arrive out of nonce order; the lower one is then invalid).
    pub forward_delay_share: f64,
    /// Share of received transactions held in their node's pool for `hold_blocks` blocks.
    pub hold_share: f64,
    /// How long a held transaction waits before it is forwarded, in blocks.
    pub hold_blocks: u64,
    /// Share of re-submissions (a transaction the front has already received) answered with
    /// `resend_reject_error` without being processed.
    pub resend_reject_share: f64,
    /// The transient error those re-submissions get.
    pub resend_reject_error: InjectedError,
    /// Seed of the fault RNG.
    pub seed: u64,
}

/// A transient error a fault knob answers a submission with (the submission is not processed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectedError {
    /// `InvalidTxError::ShardCongested` (NEP-539 congestion control).
    #[default]
    ShardCongested,
    /// `InvalidTxError::ShardStuck`.
    ShardStuck,
    /// `InvalidTxError::NotEnoughBalance`, as a node whose view of the signer is stale answers.
    NotEnoughBalance,
    /// HTTP 408 `TIMEOUT_ERROR`.
    Timeout,
    /// `InvalidTxError::InvalidNonce` (`ak_nonce` = the transaction's nonce), as a node answers a resend of a
    /// transaction that landed in a block it has applied but not yet indexed for `tx_exists`.
    InvalidNonce,
}

/// The load generator: users call `claims.devnet` `claim({"amount"})` at a steady rate, signed
/// with their own keys and submitted through the same validation path as RPC transactions.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadConfig {
    /// Claims per second (0 = off).
    pub claims_per_second: f64,
    /// Seed for user selection and amounts.
    pub seed: u64,
    /// Largest claimed amount, in token base units (amounts are uniform in `1..=max_amount`).
    /// In TOML a decimal string (yocto amounts overflow TOML's 64-bit integers) or a small integer.
    #[serde(deserialize_with = "u128_from_string_or_int")]
    pub max_amount: u128,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            claims_per_second: 0.0,
            seed: 7,
            max_amount: 1_000_000_000_000_000_000_000_000,
        }
    }
}

/// Reads a u128 written as a decimal string or as an integer.
fn u128_from_string_or_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Amount {
        Text(String),
        Int(u64),
    }
    match Amount::deserialize(d)? {
        Amount::Int(v) => Ok(u128::from(v)),
        Amount::Text(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("`{s}` does not fit in 128 bits"))),
        Amount::Text(s) => Err(serde::de::Error::custom(format!(
            "`{s}` is not a whole number of base units"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults() {
        let cfg: DevnetConfig = toml::from_str(
            "block_time_ms = 100\nlift_gas_limit = true\n[faults]\ndrop_tx_share = 0.5\n",
        )
        .unwrap();
        assert_eq!(cfg.block_time_ms, 100);
        assert_eq!(cfg.effective_gas_limit(), None);
        assert_eq!(cfg.faults.drop_tx_share, 0.5);
        assert_eq!(cfg.max_tx_gas, 1_000 * TGAS);
        assert_eq!(cfg.validity_period, 86_400);
        assert_eq!(cfg.block_time_ms, 100);
        assert_eq!(DevnetConfig::default().block_time_ms, 600);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<DevnetConfig>("blocktime = 1").is_err());
    }
}
