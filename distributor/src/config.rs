//! `[distributor]` configuration: where the treasury keys are, how batches are cut, how long to wait for what.

use std::collections::BTreeMap;
use std::path::PathBuf;

use payouts_store::Yocto;
use serde::Deserialize;

/// One teragas.
pub const TGAS: u64 = 1_000_000_000_000;

/// Everything the distributor needs besides the database and the RPC endpoint. Every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistributorConfig {
    /// near-cli JSON key files (`{"account_id","public_key","private_key"}`) of the treasury's full-access keys.
    pub key_files: Vec<PathBuf>,
    /// Name of an environment variable holding a JSON array of such key objects (instead of, or beside, files).
    pub keys_env: Option<String>,
    /// How many of the keys this process leases at most (several processes can share one pool).
    pub max_keys: usize,
    /// A stable id for this process's leases. Must be unique among running processes; default: host, pid and a
    /// random suffix.
    pub instance_id: Option<String>,
    /// Upper bound on `ft_transfer` actions per transaction (NEAR caps a receipt at 100 actions; the prepaid gas
    /// cap may allow fewer).
    pub max_transfers_per_tx: usize,
    /// Gas attached to each `ft_transfer` (and `storage_deposit`) action, in Tgas.
    pub gas_per_transfer_tgas: u64,
    /// Per-token override of `gas_per_transfer_tgas` (token → Tgas), for tokens whose `ft_transfer` burns more
    /// (typically 2–5 Tgas on mainnet). Too little gas fails a whole batch with "Exceeded the prepaid gas.".
    pub gas_per_transfer_tgas_by_token: BTreeMap<String, u64>,
    /// Learn each token's gas from outcomes (crate::gas): attach the p99 of the gas recent receipts burnt
    /// per action × (1 + `gas_margin_percent` / 100), within `min_gas_per_transfer_tgas` ..
    /// `max_gas_per_transfer_tgas`; the two settings above are the starting point. A batch that failed with
    /// "Exceeded the prepaid gas." is signed again with at least twice its gas.
    pub learn_gas: bool,
    /// Margin over the observed p99 (percent).
    pub gas_margin_percent: u64,
    /// Least gas a learned value may attach per action (Tgas).
    pub min_gas_per_transfer_tgas: u64,
    /// Most gas a learned value may attach per action (Tgas).
    pub max_gas_per_transfer_tgas: u64,
    /// Send a batch that is not full once its oldest claim waited this long (ms).
    pub max_batch_wait_ms: u64,
    /// Transactions in flight (stored, not settled) per key at most.
    pub max_in_flight_per_key: usize,
    /// Key lease time (ms); renewed every third of it. A crashed holder's keys free up after this.
    pub lease_ttl_ms: u64,
    /// Re-broadcast the same bytes when a transaction was neither included nor settled after this long (ms).
    pub rebroadcast_after_ms: u64,
    /// Ask the node (`tx`) about a transaction the indexed stream has not settled after this long (ms).
    pub outcome_timeout_ms: u64,
    /// Deadline of every RPC call (ms).
    pub rpc_timeout_ms: u64,
    /// How often a lane looks for work and for outcomes (ms).
    pub poll_interval_ms: u64,
    /// Add `storage_deposit` (registration only) before `ft_transfer` for receivers not registered.
    pub register_receivers: bool,
    /// Pause while the treasury's NEAR balance is below this, or unknown (yocto, decimal string; see
    /// [`crate::guard`]).
    #[serde(deserialize_with = "yocto")]
    pub min_near_balance: Yocto,
    /// Optional per-token cap on what is signed per UTC day of the database clock (token → yocto, decimal
    /// string), shared by every process on the database: reserved atomically with each stored batch, released
    /// when it paid nothing ([`crate::guard`]).
    #[serde(deserialize_with = "yocto_map")]
    pub daily_caps: BTreeMap<String, Yocto>,
    /// The indexer stream whose processed blocks prove a transaction dead (its cursor is read from the
    /// database; see the distributor's `death` module). Default `main`; `payouts` sets it to `[indexer] stream`
    /// when this key is absent.
    pub indexer_stream: Option<String>,
    /// Longest wait between two re-broadcasts of a transaction in doubt (ms): re-broadcasts back off from
    /// `rebroadcast_after_ms`, doubling up to this.
    pub max_rebroadcast_backoff_ms: u64,
    /// On SIGTERM/SIGINT, how long to keep finishing in-flight work before releasing the keys (ms).
    pub shutdown_grace_ms: u64,
    /// Pay claims of the same token and receiver that are pending together with one `ft_transfer` of their
    /// sum, its memo naming every one (crate::plan). Claims that opted out (a manual send with
    /// `coalesce: false`) are always paid alone.
    pub coalesce: bool,
    /// Size batches so that whole receipts tile the chunk's compute limit (crate::tile) instead of always
    /// `max_transfers_per_tx`.
    pub tile_chunks: bool,
    /// Compute of a transfer's method per unit of the gas it burns (percent): storage costs more compute
    /// than gas on nearcore (≈ +25 % for a NEP-141 `ft_transfer`).
    pub compute_per_gas_percent: u64,
    /// Margin on the estimated compute of a batch when tiling (percent).
    pub tile_margin_percent: u64,
    /// Pacing: with `tile_chunks`, the process keeps at most this many chunks' worth of receipts in flight
    /// (transactions stored and not yet settled ≤ receipts a chunk starts × this). Beyond what the chain
    /// executes, claims wait as `pending` — where they can still be merged — instead of queueing as
    /// delayed receipts. 0: off (only `max_in_flight_per_key` bounds it).
    pub pace_blocks: u64,
}

impl Default for DistributorConfig {
    fn default() -> Self {
        Self {
            key_files: Vec::new(),
            keys_env: None,
            max_keys: 64,
            instance_id: None,
            max_transfers_per_tx: 100,
            gas_per_transfer_tgas: 3,
            gas_per_transfer_tgas_by_token: BTreeMap::new(),
            learn_gas: true,
            gas_margin_percent: 30,
            min_gas_per_transfer_tgas: 1,
            max_gas_per_transfer_tgas: 50,
            max_batch_wait_ms: 2_000,
            max_in_flight_per_key: 32,
            lease_ttl_ms: 15_000,
            rebroadcast_after_ms: 5_000,
            outcome_timeout_ms: 30_000,
            rpc_timeout_ms: 10_000,
            poll_interval_ms: 100,
            register_receivers: false,
            min_near_balance: Yocto(1_000_000_000_000_000_000_000_000),
            daily_caps: BTreeMap::new(),
            indexer_stream: None,
            max_rebroadcast_backoff_ms: 60_000,
            shutdown_grace_ms: 10_000,
            coalesce: true,
            tile_chunks: true,
            compute_per_gas_percent: 125,
            tile_margin_percent: 3,
            pace_blocks: 8,
        }
    }
}

impl DistributorConfig {
    /// Checks values that parse but make no sense; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_keys", self.max_keys as u64),
            ("max_transfers_per_tx", self.max_transfers_per_tx as u64),
            ("gas_per_transfer_tgas", self.gas_per_transfer_tgas),
            ("min_gas_per_transfer_tgas", self.min_gas_per_transfer_tgas),
            ("max_gas_per_transfer_tgas", self.max_gas_per_transfer_tgas),
            ("max_in_flight_per_key", self.max_in_flight_per_key as u64),
            ("lease_ttl_ms", self.lease_ttl_ms),
            ("rebroadcast_after_ms", self.rebroadcast_after_ms),
            ("outcome_timeout_ms", self.outcome_timeout_ms),
            ("rpc_timeout_ms", self.rpc_timeout_ms),
            ("poll_interval_ms", self.poll_interval_ms),
            (
                "max_rebroadcast_backoff_ms",
                self.max_rebroadcast_backoff_ms,
            ),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(format!("distributor.{key}: must be greater than 0"));
            }
        }
        if self.lease_ttl_ms < 3 * self.poll_interval_ms {
            return Err("distributor.lease_ttl_ms: must be at least 3 × poll_interval_ms".into());
        }
        if self.min_gas_per_transfer_tgas > self.max_gas_per_transfer_tgas {
            return Err(
                "distributor.min_gas_per_transfer_tgas: must not exceed max_gas_per_transfer_tgas"
                    .into(),
            );
        }
        if self.max_gas_per_transfer_tgas > 1_000 {
            return Err("distributor.max_gas_per_transfer_tgas: at most 1000".into());
        }
        if !(100..=1_000).contains(&self.compute_per_gas_percent) {
            return Err("distributor.compute_per_gas_percent: between 100 and 1000".into());
        }
        if self.pace_blocks > 1_000 {
            return Err("distributor.pace_blocks: at most 1000".into());
        }
        if self.tile_margin_percent > 100 {
            return Err("distributor.tile_margin_percent: at most 100".into());
        }
        if self.gas_margin_percent > 1_000 {
            return Err("distributor.gas_margin_percent: at most 1000".into());
        }
        if self.gas_per_transfer_tgas > 1_000 {
            return Err("distributor.gas_per_transfer_tgas: at most 1000".into());
        }
        for (token, tgas) in &self.gas_per_transfer_tgas_by_token {
            if token.parse::<near_primitives::types::AccountId>().is_err() {
                return Err(format!(
                    "distributor.gas_per_transfer_tgas_by_token: `{token}` is not a valid account id"
                ));
            }
            if *tgas == 0 || *tgas > 1_000 {
                return Err(format!(
                    "distributor.gas_per_transfer_tgas_by_token.{token}: between 1 and 1000"
                ));
            }
        }
        for (token, cap) in &self.daily_caps {
            if token.parse::<near_primitives::types::AccountId>().is_err() {
                return Err(format!(
                    "distributor.daily_caps: `{token}` is not a valid account id"
                ));
            }
            if cap.0 == 0 {
                return Err(format!(
                    "distributor.daily_caps.{token}: must be greater than 0"
                ));
            }
        }
        Ok(())
    }

    /// The indexer stream whose cursor proves transactions dead.
    pub fn indexer_stream(&self) -> &str {
        self.indexer_stream.as_deref().unwrap_or("main")
    }

    /// Gas per action, in gas units.
    pub fn gas_per_transfer(&self) -> u64 {
        self.gas_per_transfer_tgas.saturating_mul(TGAS)
    }

    /// Gas per action for `token` (its override, else `gas_per_transfer`), in gas units.
    pub fn gas_per_transfer_for(&self, token: &str) -> u64 {
        self.gas_per_transfer_tgas_by_token
            .get(token)
            .map_or(self.gas_per_transfer(), |t| t.saturating_mul(TGAS))
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Amount {
    Text(String),
    Int(u64),
}

impl Amount {
    /// The amount: a TOML integer as is, a string by [`Yocto`]'s own parser (digits only, fits 128 bits).
    fn yocto(self) -> Result<Yocto, String> {
        match self {
            Amount::Int(n) => Ok(Yocto(u128::from(n))),
            Amount::Text(s) => s.parse().map_err(|e| format!("`{s}`: {e}")),
        }
    }
}

fn yocto<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Yocto, D::Error> {
    Amount::deserialize(d)?
        .yocto()
        .map_err(serde::de::Error::custom)
}

fn yocto_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Yocto>, D::Error> {
    BTreeMap::<String, Amount>::deserialize(d)?
        .into_iter()
        .map(|(k, v)| Ok((k, v.yocto().map_err(serde::de::Error::custom)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        DistributorConfig::default().validate().unwrap();
        let c = DistributorConfig {
            max_in_flight_per_key: 0,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().contains("max_in_flight_per_key"));
        let mut caps = BTreeMap::new();
        caps.insert("Not Valid".to_string(), Yocto(5));
        let c = DistributorConfig {
            daily_caps: caps,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().contains("daily_caps"));
    }

    #[test]
    fn amounts_are_decimal_strings() {
        let c: DistributorConfig = serde_json::from_value(serde_json::json!({
            "min_near_balance": "340282366920938463463374607431768211455",
            "daily_caps": {"token.devnet": "1000"}
        }))
        .unwrap();
        assert_eq!(c.min_near_balance, Yocto(u128::MAX));
        assert_eq!(c.daily_caps["token.devnet"], Yocto(1000));
        for bad in [
            "1.5",
            "-1",
            "abc",
            "340282366920938463463374607431768211456",
        ] {
            let r: Result<DistributorConfig, _> =
                serde_json::from_value(serde_json::json!({ "min_near_balance": bad }));
            assert!(r.is_err(), "{bad} accepted");
        }
    }
}
