//! NEP-539 congestion control of the devnet's single shard, with nearcore's rules
//! (core/primitives/src/congestion_info.rs `CongestionControl`, thresholds from the runtime
//! config: core/parameters/res/runtime_configs/68.yaml, 73.yaml, 79.yaml).
//!
//! After every block the chunk records its congestion info: the gas and the bytes of the
//! receipts left waiting (delayed receipts) and how many chunks in a row the shard has missed.
//! From it:
//! - the *incoming congestion* is `delayed gas / max_congestion_incoming_gas` (400 PGas), the
//!   *memory congestion* `receipt bytes / max_congestion_memory_consumption` (1,000 MB), the
//!   *missed-chunks congestion* `missed / max_congestion_missed_chunks` (125), each capped at 1;
//!   the congestion level is the largest;
//! - a node rejects a new transaction to the shard when the level of its head's chunk is at or
//!   above `reject_tx_congestion_threshold` (0.8): `ShardStuck` when missed chunks are the cause,
//!   `ShardCongested` otherwise (chain/client/src/rpc_handler.rs; both retryable);
//! - the chunk producer converts transactions only up to a gas budget that shrinks linearly from
//!   `max_tx_gas` (500 Tgas) to `min_tx_gas` (20 Tgas) as the incoming congestion grows
//!   (`process_tx_limit`).
//!
//! Outgoing (buffered) congestion does not exist with one shard.

use near_parameters::config::CongestionControlConfig;
use near_primitives::errors::InvalidTxError;
use near_primitives::views::CongestionInfoView;

/// The congestion info of a chunk (after it was applied).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Congestion {
    /// Gas of the receipts waiting for a later chunk (their prepaid gas).
    pub delayed_gas: u128,
    /// Size of those receipts, bytes.
    pub receipt_bytes: u64,
    /// Chunks the shard has missed in a row.
    pub missed_chunks: u64,
}

fn share(value: u128, max: u128) -> f64 {
    if max == 0 {
        return 1.0;
    }
    // Levels are ratios for comparisons, never amounts of money.
    (value as f64 / max as f64).min(1.0)
}

impl Congestion {
    /// Incoming congestion, 0..=1.
    pub fn incoming(&self, cfg: &CongestionControlConfig) -> f64 {
        share(
            self.delayed_gas,
            u128::from(cfg.max_congestion_incoming_gas.as_gas()),
        )
    }

    /// Memory congestion, 0..=1.
    pub fn memory(&self, cfg: &CongestionControlConfig) -> f64 {
        share(
            u128::from(self.receipt_bytes),
            u128::from(cfg.max_congestion_memory_consumption),
        )
    }

    /// Missed-chunks congestion, 0..=1.
    pub fn missed(&self, cfg: &CongestionControlConfig) -> f64 {
        if self.missed_chunks <= 1 {
            // nearcore: a single missed chunk is not congestion.
            return 0.0;
        }
        share(
            u128::from(self.missed_chunks),
            u128::from(cfg.max_congestion_missed_chunks),
        )
    }

    /// The congestion level: the largest of the three.
    pub fn level(&self, cfg: &CongestionControlConfig) -> f64 {
        self.incoming(cfg)
            .max(self.memory(cfg))
            .max(self.missed(cfg))
    }

    /// Whether the shard accepts new transactions (nearcore's `shard_accepts_transactions`),
    /// as the error a node answers with when it does not.
    pub fn accepts(&self, cfg: &CongestionControlConfig) -> Result<(), InvalidTxError> {
        let threshold = cfg.reject_tx_congestion_threshold;
        let level = self.level(cfg);
        if level < threshold {
            return Ok(());
        }
        if self.missed(cfg) >= threshold {
            return Err(InvalidTxError::ShardStuck {
                shard_id: 0,
                missed_chunks: self.missed_chunks,
            });
        }
        Err(InvalidTxError::ShardCongested {
            shard_id: 0,
            congestion_level: ordered_float::NotNan::new(level)
                .unwrap_or_else(|_| ordered_float::NotNan::from(1u8)),
        })
    }

    /// Gas the chunk producer may spend converting transactions in the next chunk.
    pub fn process_tx_limit(&self, cfg: &CongestionControlConfig) -> u64 {
        let max = cfg.max_tx_gas.as_gas();
        let min = cfg.min_tx_gas.as_gas().min(max);
        let c = self.incoming(cfg);
        // Linear mix, in integers: max - (max - min) * c, with c in millionths.
        let c_ppm = (c * 1_000_000.0).round() as u128;
        let span = u128::from(max - min);
        max - u64::try_from(span * c_ppm / 1_000_000).unwrap_or(max - min)
    }

    /// The chunk header's `congestion_info`.
    pub fn view(&self) -> CongestionInfoView {
        CongestionInfoView {
            delayed_receipts_gas: self.delayed_gas,
            buffered_receipts_gas: 0,
            receipt_bytes: self.receipt_bytes,
            allowed_shard: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fees::Fees;

    fn cfg() -> CongestionControlConfig {
        Fees::new(100_000_000, 1_000_000_000_000_000)
            .runtime_config()
            .congestion_control_config
    }

    #[test]
    fn mainnet_thresholds_come_from_the_runtime_config() {
        let c = cfg();
        assert_eq!(
            c.max_congestion_incoming_gas.as_gas(),
            400_000_000_000_000_000
        );
        assert_eq!(c.max_congestion_missed_chunks, 125);
        assert_eq!(c.reject_tx_congestion_threshold, 0.8);
        assert_eq!(c.max_tx_gas.as_gas(), 500_000_000_000_000);
        assert_eq!(c.min_tx_gas.as_gas(), 20_000_000_000_000);
    }

    #[test]
    fn rejects_at_the_threshold_and_says_why() {
        let c = cfg();
        let max = u128::from(c.max_congestion_incoming_gas.as_gas());
        let calm = Congestion {
            delayed_gas: max * 79 / 100,
            ..Congestion::default()
        };
        assert!(calm.accepts(&c).is_ok());
        let congested = Congestion {
            delayed_gas: max * 80 / 100,
            ..Congestion::default()
        };
        assert!(matches!(
            congested.accepts(&c),
            Err(InvalidTxError::ShardCongested { .. })
        ));
        let stuck = Congestion {
            missed_chunks: 100,
            ..Congestion::default()
        };
        assert!(matches!(
            stuck.accepts(&c),
            Err(InvalidTxError::ShardStuck {
                missed_chunks: 100,
                ..
            })
        ));
        assert!(Congestion {
            missed_chunks: 99,
            ..Congestion::default()
        }
        .accepts(&c)
        .is_ok());
    }

    #[test]
    fn transaction_budget_shrinks_with_incoming_congestion() {
        let c = cfg();
        let max = u128::from(c.max_congestion_incoming_gas.as_gas());
        let at = |share: u128| {
            Congestion {
                delayed_gas: max * share / 100,
                ..Congestion::default()
            }
            .process_tx_limit(&c)
        };
        assert_eq!(at(0), 500_000_000_000_000);
        assert_eq!(at(50), 260_000_000_000_000);
        assert_eq!(at(100), 20_000_000_000_000);
        assert_eq!(at(200), 20_000_000_000_000);
    }
}
