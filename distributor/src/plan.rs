//! Batch planning: which pending claims go together in one `ft_transfer` transaction.
//!
//! NEAR's limits (see DESIGN "Transactions on NEAR"): all actions of one transaction to one contract become
//! one receipt (they succeed or revert together), at most 100 actions per receipt, and the prepaid gas of a
//! transaction is capped (300 Tgas before protocol 83, read from the node). A claim flagged for isolation
//! (its last batch failed as a whole) is sent alone, so a bad receiver fails by itself and poisons nothing.
//!
//! Coalescing ([`plan_transfers`] with `coalesce`): claims of the same receiver (and the same own memo, and
//! the same split group) that are pending together are paid by one `ft_transfer` of their sum, checked in
//! u128, whose memo names every one of them (`payouts:12,13,40`, at most
//! [`payouts_store::memo::MAX_MEMO_LEN`] long: beyond it, or when the sum would overflow, a further transfer
//! starts). Batch limits count transfers (actions), not claims. A claim that opted out
//! (`may_coalesce = false`) always has a transfer of its own.

use std::collections::HashMap;
use std::str::FromStr;

use near_primitives::types::AccountId;
use payouts_store::claims::Claim;
use payouts_store::memo::{memo_len, transfer_memo_many, MAX_MEMO_LEN};
use payouts_store::{ClaimId, Yocto};

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

/// One `ft_transfer`: the claims it pays (one, or several of the same receiver when coalesced), oldest
/// first. Built only by [`plan_transfers`], which keeps its amount a checked u128 sum and its memo bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The claims paid, oldest first; never empty.
    pub claims: Vec<Claim>,
}

impl Transfer {
    /// A transfer paying `claim` alone.
    pub fn single(claim: Claim) -> Self {
        Self {
            claims: vec![claim],
        }
    }

    /// The receiver (empty for an empty transfer, which no account id matches).
    pub fn receiver(&self) -> &str {
        self.claims.first().map_or("", |c| c.receiver_id.as_str())
    }

    /// The amount: the sum of its claims (checked when they were merged; saturating only if built by hand).
    pub fn amount(&self) -> Yocto {
        Yocto(
            self.claims
                .iter()
                .fold(0u128, |acc, c| acc.saturating_add(c.amount.0)),
        )
    }

    /// The claims' ids, in memo order.
    pub fn ids(&self) -> Vec<ClaimId> {
        self.claims.iter().map(|c| c.id).collect()
    }

    /// The memo naming every claim it pays.
    pub fn memo(&self) -> String {
        let own = self.claims.first().and_then(|c| c.memo.as_deref());
        transfer_memo_many(&self.ids(), own)
    }

    /// Whether `claim` may join: same receiver and memo, both willing, the sum fits a u128 and the memo its
    /// bound.
    fn can_take(&self, claim: &Claim) -> bool {
        let Some(first) = self.claims.first() else {
            return false;
        };
        if !(first.may_coalesce && claim.may_coalesce)
            || first.receiver_id != claim.receiver_id
            || first.memo != claim.memo
        {
            return false;
        }
        let sum = self
            .claims
            .iter()
            .try_fold(claim.amount.0, |acc, c| acc.checked_add(c.amount.0));
        if sum.is_none() {
            return false;
        }
        let mut ids = self.ids();
        ids.push(claim.id);
        memo_len(&ids, first.memo.as_deref()) <= MAX_MEMO_LEN
    }
}

/// Claims of a batch, flattened in action order.
pub fn batch_claims(batch: &[Transfer]) -> impl Iterator<Item = &Claim> {
    batch.iter().flat_map(|t| t.claims.iter())
}

/// Splits claims (oldest first) into batches, in the order of their oldest claim. A claim flagged for
/// isolation goes only with the other claims of its split group (one half of a failed batch: bisection), or
/// alone when it has none; the rest fill full batches. Claims that can never be paid (invalid receiver, zero
/// amount) are returned apart. One transfer per claim: [`plan_transfers`] without coalescing.
pub fn plan(claims: Vec<Claim>, limits: &Limits) -> (Vec<Vec<Claim>>, Vec<Unpayable>) {
    let (batches, bad) = plan_transfers(claims, limits, false);
    let batches = batches
        .into_iter()
        .map(|b| b.into_iter().flat_map(|t| t.claims).collect())
        .collect();
    (batches, bad)
}

/// [`plan`] in transfers: with `coalesce`, a claim joins an earlier transfer of the same split group to the
/// same receiver (see the module doc) instead of taking an action of its own; batches hold at most
/// `transfers_per_tx` transfers.
pub fn plan_transfers(
    claims: Vec<Claim>,
    limits: &Limits,
    coalesce: bool,
) -> (Vec<Vec<Transfer>>, Vec<Unpayable>) {
    let per_tx = limits.transfers_per_tx().max(1);
    let mut batches: Vec<Vec<Transfer>> = Vec::new();
    let mut bad = Vec::new();
    // Index in `batches` of the batch still open for a split group (`None`: the ordinary claims).
    let mut open: HashMap<Option<String>, usize> = HashMap::new();
    // The latest transfer per (split group, receiver, own memo): where a claim may be merged.
    type Key = (Option<String>, String, Option<String>);
    let mut merge: HashMap<Key, (usize, usize)> = HashMap::new();
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
                batches.push(vec![Transfer::single(claim)]);
                continue;
            }
        };
        let key = (coalesce && claim.may_coalesce)
            .then(|| (group.clone(), claim.receiver_id.clone(), claim.memo.clone()));
        if let Some(&(b, t)) = key.as_ref().and_then(|k| merge.get(k)) {
            if batches[b][t].can_take(&claim) {
                batches[b][t].claims.push(claim);
                continue;
            }
        }
        let at = match open.get(&group) {
            Some(&i) if batches[i].len() < per_tx => {
                batches[i].push(Transfer::single(claim));
                (i, batches[i].len() - 1)
            }
            _ => {
                open.insert(group, batches.len());
                batches.push(vec![Transfer::single(claim)]);
                (batches.len() - 1, 0)
            }
        };
        if let Some(k) = key {
            merge.insert(k, at);
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
            may_coalesce: true,
            campaign_id: None,
            row_key: None,
        }
    }

    fn ids_of(batches: &[Vec<Transfer>]) -> Vec<Vec<Vec<i64>>> {
        batches
            .iter()
            .map(|b| {
                b.iter()
                    .map(|t| t.ids().iter().map(|i| i.0).collect())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn coalescing_merges_a_receivers_claims_into_one_transfer() {
        let limits = Limits {
            max_transfers_per_tx: 2,
            gas_per_transfer: 3 * TGAS,
            max_tx_gas: 300 * TGAS,
        };
        let mut opted_out = claim(6, "a.devnet", 1, false);
        opted_out.may_coalesce = false;
        let mut other_memo = claim(7, "a.devnet", 1, false);
        other_memo.memo = Some("other".into());
        let claims = vec![
            claim(1, "a.devnet", 5, false),
            claim(2, "b.devnet", 1, false),
            claim(3, "a.devnet", 7, false),
            claim(4, "c.devnet", 1, false),
            claim(5, "b.devnet", 2, false),
            opted_out,
            other_memo,
            claim(8, "c.devnet", 1, false),
        ];
        let (batches, bad) = plan_transfers(claims.clone(), &limits, true);
        assert!(bad.is_empty());
        // a and b fill the first batch (two transfers); c's claims merge in the second batch; the opted-out
        // claim and the one with another memo get their own transfers.
        assert_eq!(
            ids_of(&batches),
            vec![
                vec![vec![1, 3], vec![2, 5]],
                vec![vec![4, 8], vec![6]],
                vec![vec![7]]
            ]
        );
        assert_eq!(batches[0][0].amount(), Yocto(12));
        assert_eq!(batches[0][0].memo(), "payouts:1,3");
        // Off: one transfer per claim, as plan() does.
        let (off, _) = plan_transfers(claims, &limits, false);
        assert!(off.iter().flatten().all(|t| t.claims.len() == 1));
        assert_eq!(off.iter().map(Vec::len).sum::<usize>(), 8);
    }

    #[test]
    fn merged_transfers_split_at_the_memo_bound_and_on_overflow() {
        let limits = Limits {
            max_transfers_per_tx: 100,
            gas_per_transfer: 3 * TGAS,
            max_tx_gas: 300 * TGAS,
        };
        // 1,000 claims of one receiver: every transfer's memo within the bound, every claim once.
        let claims: Vec<Claim> = (1..=1000)
            .map(|i| claim(1_000_000 + i, "a.devnet", 1, false))
            .collect();
        let (batches, _) = plan_transfers(claims, &limits, true);
        let transfers: Vec<&Transfer> = batches.iter().flatten().collect();
        assert!(
            transfers.len() > 1 && transfers.len() < 100,
            "{}",
            transfers.len()
        );
        assert!(transfers.iter().all(|t| t.memo().len() <= MAX_MEMO_LEN));
        let mut seen: Vec<i64> = transfers
            .iter()
            .flat_map(|t| t.ids())
            .map(|i| i.0)
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (1_000_001..=1_001_000).collect::<Vec<_>>());
        // A sum past u128::MAX starts another transfer instead of wrapping.
        let claims = vec![
            claim(1, "a.devnet", u128::MAX - 1, false),
            claim(2, "a.devnet", 1, false),
            claim(3, "a.devnet", 1, false),
        ];
        let (batches, _) = plan_transfers(claims, &limits, true);
        assert_eq!(ids_of(&batches), vec![vec![vec![1, 2], vec![3]]]);
        assert_eq!(batches[0][0].amount(), Yocto(u128::MAX));
    }

    #[test]
    fn split_groups_coalesce_only_within_themselves() {
        let limits = Limits {
            max_transfers_per_tx: 10,
            gas_per_transfer: 3 * TGAS,
            max_tx_gas: 300 * TGAS,
        };
        let claims = vec![
            grouped(1, "a.devnet", 1, true, Some("h/0")),
            grouped(2, "a.devnet", 1, false, None),
            grouped(3, "a.devnet", 1, true, Some("h/0")),
            grouped(4, "a.devnet", 1, true, Some("h/1")),
            grouped(5, "a.devnet", 1, true, None),
            grouped(6, "a.devnet", 1, false, None),
        ];
        let (batches, _) = plan_transfers(claims, &limits, true);
        assert_eq!(
            ids_of(&batches),
            vec![
                vec![vec![1, 3]],
                vec![vec![2, 6]],
                vec![vec![4]],
                vec![vec![5]]
            ]
        );
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
