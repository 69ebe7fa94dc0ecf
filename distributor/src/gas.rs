//! Gas per action, learned from outcomes. Real tokens burn 2–5 Tgas per `ft_transfer`, and a batch whose
//! actions attach too little fails its whole receipt ("Exceeded the prepaid gas."), so a fixed number is
//! either wasteful or wrong. The indexer records what each of our receipts burnt (store `gas`); from the
//! last [`SAMPLES`] settled transactions of a token the distributor attaches the p99 of the gas burnt per
//! action × (1 + margin), within the configured bounds; with no sample yet, the configured value.
//!
//! A batch that ran out of gas paid nothing (its actions revert together) and is handed back whole, not
//! bisected (store `retry`: kind `gas`); its attached gas is known to be too little, so the next choice is at
//! least twice it. Exactly-once is untouched: the claims of a failed receipt are signed again only after the
//! indexer settled that receipt as failed, which is the same rule as for any failed batch.
//!
//! Batch size follows: `transfers_per_tx` = min(config, 100 actions, the node's `max_total_prepaid_gas` ÷
//! gas per action) ([`crate::plan::Limits`]).

use payouts_store::gas::GasSamples;
use serde::Serialize;

/// Settled transactions of a token the choice looks at.
pub const SAMPLES: i64 = 200;

/// Where a token's gas per action comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GasBasis {
    /// `gas_per_transfer_tgas` (or the token's entry): nothing learned yet, or learning is off.
    Configured,
    /// The p99 of what recent receipts burnt per action, with the margin.
    Learned,
    /// Raised after a batch ran out of gas.
    RaisedAfterOutOfGas,
}

/// The gas a token's next batches attach per action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GasChoice {
    /// Gas per action.
    pub gas_per_action: u64,
    /// Why.
    pub basis: GasBasis,
    /// Successful receipts it learned from.
    pub samples: usize,
    /// Their p99 of gas burnt per action.
    pub p99_burnt: Option<u64>,
}

impl GasChoice {
    /// The configured gas, nothing learned.
    pub fn configured(gas_per_action: u64) -> Self {
        GasChoice {
            gas_per_action,
            basis: GasBasis::Configured,
            samples: 0,
            p99_burnt: None,
        }
    }
}

/// A token's gas choice as the status page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenGas {
    /// Token contract.
    pub token: String,
    /// Gas attached per action.
    pub gas_per_action: u64,
    /// Transfers per transaction it allows (with the node's cap and `max_transfers_per_tx`).
    pub transfers_per_tx: usize,
    /// Why this gas.
    pub basis: GasBasis,
    /// Successful receipts learned from.
    pub samples: usize,
    /// Their p99 of gas burnt per action by the methods.
    pub p99_burnt: Option<u64>,
}

/// The p99 (nearest rank) of `v`.
fn p99(v: &[u64]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let rank = (s.len() * 99).div_ceil(100).max(1);
    Some(s[rank - 1])
}

/// The gas per action for a token: learned from `samples` within `min..=max`, else `configured`.
pub fn choose(
    configured: u64,
    samples: &GasSamples,
    margin_percent: u64,
    min: u64,
    max: u64,
) -> GasChoice {
    let p = p99(&samples.burnt_per_action);
    let (mut gas, mut basis) = match p {
        Some(p) => (
            p.saturating_mul(100 + margin_percent)
                .div_ceil(100)
                .clamp(min, max),
            GasBasis::Learned,
        ),
        None => (configured, GasBasis::Configured),
    };
    if let Some(&short) = samples.too_little.iter().max() {
        if gas <= short {
            gas = short.saturating_mul(2).min(max).max(gas);
            basis = GasBasis::RaisedAfterOutOfGas;
        }
    }
    GasChoice {
        gas_per_action: gas,
        basis,
        samples: samples.burnt_per_action.len(),
        p99_burnt: p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_000_000_000_000;

    fn samples(burnt: &[u64], short: &[u64]) -> GasSamples {
        GasSamples {
            burnt_per_action: burnt.to_vec(),
            too_little: short.to_vec(),
        }
    }

    #[test]
    fn nothing_learned_keeps_the_configured_gas() {
        let c = choose(3 * T, &samples(&[], &[]), 30, T, 50 * T);
        assert_eq!(c.gas_per_action, 3 * T);
        assert_eq!(c.basis, GasBasis::Configured);
    }

    #[test]
    fn learns_the_p99_with_its_margin_within_bounds() {
        let mut burnt = vec![2 * T; 99];
        burnt.push(4 * T);
        // p99 of 100 samples is the 99th smallest: 2 Tgas; + 30 %.
        let c = choose(3 * T, &samples(&burnt, &[]), 30, T, 50 * T);
        assert_eq!(c.gas_per_action, 2 * T * 13 / 10);
        assert_eq!(
            (c.basis, c.samples, c.p99_burnt),
            (GasBasis::Learned, 100, Some(2 * T))
        );
        // Bounded.
        assert_eq!(
            choose(3 * T, &samples(&[T / 10], &[]), 30, T, 50 * T).gas_per_action,
            T
        );
        assert_eq!(
            choose(3 * T, &samples(&[90 * T], &[]), 30, T, 50 * T).gas_per_action,
            50 * T
        );
    }

    #[test]
    fn running_out_of_gas_at_least_doubles_it() {
        // Failed at the configured 3 Tgas, nothing succeeded yet: 6 Tgas.
        let c = choose(3 * T, &samples(&[], &[3 * T]), 30, T, 50 * T);
        assert_eq!(
            (c.gas_per_action, c.basis),
            (6 * T, GasBasis::RaisedAfterOutOfGas)
        );
        // Failed again at 6: 12.
        let c = choose(3 * T, &samples(&[], &[6 * T, 3 * T]), 30, T, 50 * T);
        assert_eq!(c.gas_per_action, 12 * T);
        // Successes at 6.2 Tgas burnt: learned 8.06 > the 6 that failed: learned wins.
        let c = choose(3 * T, &samples(&[62 * T / 10], &[6 * T]), 30, T, 50 * T);
        assert_eq!(c.basis, GasBasis::Learned);
        assert!(c.gas_per_action > 6 * T);
        // Never above the bound.
        let c = choose(3 * T, &samples(&[], &[40 * T]), 30, T, 50 * T);
        assert_eq!(c.gas_per_action, 50 * T);
    }
}
