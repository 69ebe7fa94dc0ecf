//! Batch planning: which pending claims go together in one `ft_transfer` transaction.
//!
//! NEAR's limits (see DESIGN "Transactions on NEAR"): all actions of one transaction to one contract become
//! one receipt (they succeed or revert together), at most 100 actions per receipt, and the prepaid gas of a
//! transaction is capped (300 Tgas before protocol 83, read from the node). A claim flagged for isolation
//! (its last batch failed as a whole) is sent alone, so a bad receiver fails by itself and poisons nothing.

use std::collections::HashMap;
use std::str::FromStr;

use near_primitives::types::AccountId;
use payouts_store::claims::Claim;
use payouts_store::ClaimId;

/// Nearcore's cap on actions in one receipt.
pub const MAX_ACTIONS_PER_RECEIPT: usize = 100;

/// How big a batch may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Configured upper bound on transfers per transaction.
    pub max_transfers_per_tx: usize,
    /// Gas attached to each `ft_transfer` action.
    pub gas_per_transfer: u64,
    /// The node's cap on a transaction's prepaid gas.
    pub max_tx_gas: u64,
}

impl Limits {
    /// The same limits with another gas per transfer.
    pub fn with_gas(self, gas_per_transfer: u64) -> Self {
        Self {
            gas_per_transfer,
            ..self
        }
    }

    /// Transfers that fit in one transaction: within the action cap, the gas cap and the configuration.
    /// At least 1 when a single transfer fits at all, else 0.
    pub fn transfers_per_tx(&self) -> usize {
        let by_gas = self
            .max_tx_gas
            .checked_div(self.gas_per_transfer)
            .unwrap_or(0);
        let by_gas = usize::try_from(by_gas).unwrap_or(usize::MAX);
        self.max_transfers_per_tx
            .min(MAX_ACTIONS_PER_RECEIPT)
            .min(by_gas)
    }
}

/// A claim that can never be paid as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpayable {
    /// The claim.
    pub id: ClaimId,
    /// Why.
    pub reason: String,
}

/// Splits claims (oldest first) into batches, in the order of their oldest claim. A claim flagged for
/// isolation goes only with the other claims of its split group (one half of a failed batch: bisection), or
/// alone when it has none; the rest fill full batches. Claims that can never be paid (invalid receiver, zero
/// amount) are returned apart.
pub fn plan(claims: Vec<Claim>, limits: &Limits) -> (Vec<Vec<Claim>>, Vec<Unpayable>) {
    let per_tx = limits.transfers_per_tx().max(1);
    let mut batches: Vec<Vec<Claim>> = Vec::new();
    let mut bad = Vec::new();
    // Index in `batches` of the batch still open for a split group (`None`: the ordinary claims).
    let mut open: HashMap<Option<String>, usize> = HashMap::new();
    for claim in claims {
        if let Err(reason) = check(&claim) {
            bad.push(Unpayable {
                id: claim.id,
                reason,
            });
            continue;
        }
        let group = match (&claim.needs_isolation, &claim.split_group) {
            (false, _) => None,
            (true, Some(g)) => Some(g.clone()),
            (true, None) => {
                batches.push(vec![claim]);
                continue;
            }
        };
        match open.get(&group) {
            Some(&i) if batches[i].len() < per_tx => batches[i].push(claim),
            _ => {
                open.insert(group, batches.len());
                batches.push(vec![claim]);
            }
        }
    }
    (batches, bad)
}

fn check(claim: &Claim) -> Result<(), String> {
    if claim.amount.0 == 0 {
        return Err("amount is 0: never sent".into());
    }
    AccountId::from_str(&claim.receiver_id)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "receiver `{}` is not a valid account id: {e}",
                claim.receiver_id
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use payouts_store::{ClaimSource, ClaimStatus, Yocto};

    const TGAS: u64 = 1_000_000_000_000;

    fn claim(id: i64, receiver: &str, amount: u128, isolate: bool) -> Claim {
        grouped(id, receiver, amount, isolate, None)
    }

    fn grouped(id: i64, receiver: &str, amount: u128, isolate: bool, group: Option<&str>) -> Claim {
        let now = chrono::Utc::now();
        Claim {
            id: ClaimId(id),
            source: ClaimSource::Manual,
            rule: None,
            receipt_id: None,
            log_index: None,
            event_index: None,
            idempotency_key: Some(format!("k{id}")),
            request_digest: None,
            token_contract: "token.devnet".into(),
            receiver_id: receiver.into(),
            amount: Yocto(amount),
            memo: None,
            status: ClaimStatus::Pending,
            attempts: 0,
            last_error: None,
            needs_isolation: isolate,
            split_group: group.map(str::to_string),
            trigger_block_height: None,
            current_tx_hash: None,
            created_at: now,
            updated_at: now,
            confirmed_at: None,
            retry_at: None,
            retry_kind: None,
            retries: 0,
        }
    }

    #[test]
    fn batch_size_respects_actions_gas_and_config() {
        let l = |max, gas, cap| Limits {
            max_transfers_per_tx: max,
            gas_per_transfer: gas * TGAS,
            max_tx_gas: cap * TGAS,
        };
        assert_eq!(l(500, 2, 300).transfers_per_tx(), 100, "action cap");
        assert_eq!(l(500, 5, 300).transfers_per_tx(), 60, "gas cap");
        assert_eq!(l(10, 3, 300).transfers_per_tx(), 10, "configured");
        assert_eq!(
            l(500, 3, 1000).transfers_per_tx(),
            100,
            "1 PGas protocol still capped by actions"
        );
        assert_eq!(
            l(500, 400, 300).transfers_per_tx(),
            0,
            "one transfer does not fit"
        );
        assert_eq!(
            Limits {
                max_transfers_per_tx: 5,
                gas_per_transfer: 0,
                max_tx_gas: 0
            }
            .transfers_per_tx(),
            0
        );
    }

    #[test]
    fn isolated_claims_go_alone_and_bad_ones_apart() {
        let limits = Limits {
            max_transfers_per_tx: 2,
            gas_per_transfer: 3 * TGAS,
            max_tx_gas: 300 * TGAS,
        };
        let claims = vec![
            claim(1, "a.devnet", 1, false),
            claim(2, "b.devnet", 1, true),
            claim(3, "c.devnet", 1, false),
            claim(4, "Bad Name", 1, false),
            claim(5, "e.devnet", 0, false),
            claim(6, "f.devnet", 1, false),
            claim(7, "g.devnet", 1, false),
        ];
        let (batches, bad) = plan(claims, &limits);
        let ids: Vec<Vec<i64>> = batches
            .iter()
            .map(|b| b.iter().map(|c| c.id.0).collect())
            .collect();
        assert_eq!(ids, vec![vec![1, 3], vec![2], vec![6, 7]]);
        assert_eq!(bad.iter().map(|b| b.id.0).collect::<Vec<_>>(), vec![4, 5]);
        assert!(bad[0].reason.contains("not a valid account id"));
    }

    #[test]
    fn split_groups_are_batched_only_together() {
        let limits = Limits {
            max_transfers_per_tx: 3,
            gas_per_transfer: 3 * TGAS,
            max_tx_gas: 300 * TGAS,
        };
        let claims = vec![
            grouped(1, "a.devnet", 1, true, Some("h/0")),
            grouped(2, "b.devnet", 1, true, Some("h/1")),
            grouped(3, "c.devnet", 1, false, None),
            grouped(4, "d.devnet", 1, true, Some("h/0")),
            grouped(5, "e.devnet", 1, true, Some("h/1")),
            grouped(6, "f.devnet", 1, false, None),
            grouped(7, "g.devnet", 1, true, Some("h/0")),
            grouped(8, "h.devnet", 1, true, Some("h/0")),
        ];
        let (batches, bad) = plan(claims, &limits);
        assert!(bad.is_empty());
        let ids: Vec<Vec<i64>> = batches
            .iter()
            .map(|b| b.iter().map(|c| c.id.0).collect())
            .collect();
        assert_eq!(ids, vec![vec![1, 4, 7], vec![2, 5], vec![3, 6], vec![8]]);
    }
}
