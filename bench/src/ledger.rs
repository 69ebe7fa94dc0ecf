//! The exactly-once check: the devnet ledger's transfer memos against the run's claims.

use std::collections::HashMap;

use payouts_store::api_queries::{list_claims, ClaimFilter};
use payouts_store::memo::claim_ids_from_memo;
use payouts_store::{ClaimStatus, PgPool};
use serde::{Deserialize, Serialize};

/// What the devnet's ledger says about paying exactly once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerCheck {
    /// `ft_transfer`s applied on the devnet.
    pub transfers: u64,
    /// Distinct claims of the run paid.
    pub claims_paid: u64,
    /// Claims paid more than once.
    pub claims_paid_more_than_once: u64,
    /// Transfers whose memo names no claim of the run.
    pub transfers_naming_no_claim: u64,
    /// Claims stored as confirmed with no transfer on the ledger.
    pub confirmed_not_paid: u64,
    /// Claims paid on the ledger but not stored as confirmed.
    pub paid_not_confirmed: u64,
    /// `claims_paid_more_than_once + transfers_naming_no_claim`: must be 0.
    pub duplicates: u64,
}

/// Checks the ledger's transfer memos against the run's claims (`id → confirmed?`).
pub(crate) fn check_ledger<'a, T>(
    memos: impl IntoIterator<Item = Option<&'a str>>,
    claims: &HashMap<i64, T>,
    confirmed: impl Fn(&T) -> bool,
) -> LedgerCheck {
    let mut check = LedgerCheck::default();
    let mut per_claim: HashMap<i64, u64> = HashMap::new();
    for memo in memos {
        check.transfers += 1;
        // A merged transfer names several claims: each of them counts as paid by it.
        match memo.and_then(claim_ids_from_memo) {
            Some(ids) if ids.iter().all(|id| claims.contains_key(&id.0)) => {
                for id in ids {
                    *per_claim.entry(id.0).or_default() += 1;
                }
            }
            _ => check.transfers_naming_no_claim += 1,
        }
    }
    check.claims_paid = per_claim.len() as u64;
    check.claims_paid_more_than_once = per_claim.values().filter(|n| **n > 1).count() as u64;
    check.confirmed_not_paid = claims
        .iter()
        .filter(|(id, c)| confirmed(c) && !per_claim.contains_key(id))
        .count() as u64;
    check.paid_not_confirmed = per_claim
        .keys()
        .filter(|id| !confirmed(&claims[*id]))
        .count() as u64;
    check.duplicates = check.claims_paid_more_than_once + check.transfers_naming_no_claim;
    check
}

/// Every claim in the (throwaway) database: id → (confirmed?, created at).
pub(crate) async fn run_claims(
    pool: &PgPool,
) -> anyhow::Result<HashMap<i64, (bool, chrono::DateTime<chrono::Utc>)>> {
    let mut conn = payouts_store::get(pool).await?;
    let mut out = HashMap::new();
    let mut filter = ClaimFilter {
        limit: 10_000,
        ..ClaimFilter::default()
    };
    loop {
        let page = list_claims(&mut conn, &filter).await?;
        let Some(last) = page.last() else {
            return Ok(out);
        };
        filter.before = Some(last.id);
        out.extend(
            page.iter()
                .map(|c| (c.id.0, (c.status == ClaimStatus::Confirmed, c.created_at))),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_duplicates() {
        // Claims 1..=4; 1–3 confirmed.
        let claims: HashMap<i64, bool> = [(1, true), (2, true), (3, true), (4, false)].into();
        let clean = check_ledger(
            [
                Some("payouts:1"),
                Some("payouts:2 thanks"),
                Some("payouts:3"),
            ],
            &claims,
            |c| *c,
        );
        assert_eq!(clean.duplicates, 0);
        assert_eq!(clean.claims_paid, 3);
        assert_eq!(clean.confirmed_not_paid, 0);
        let bad = check_ledger(
            [
                Some("payouts:1"),
                Some("payouts:1"),
                Some("payouts:1"),
                Some("payouts:4"),
                Some("payouts:99"),
                Some("something else"),
                None,
            ],
            &claims,
            |c| *c,
        );
        assert_eq!(bad.transfers, 7);
        assert_eq!(bad.claims_paid_more_than_once, 1);
        assert_eq!(bad.transfers_naming_no_claim, 3);
        assert_eq!(bad.duplicates, 4);
        assert_eq!(bad.confirmed_not_paid, 2);
        assert_eq!(bad.paid_not_confirmed, 1);
        // A merged transfer pays every claim it names; a claim in two memos is a duplicate.
        let merged = check_ledger([Some("payouts:1,2"), Some("payouts:3,2")], &claims, |c| *c);
        assert_eq!(merged.transfers, 2);
        assert_eq!(merged.claims_paid, 3);
        assert_eq!(merged.claims_paid_more_than_once, 1);
        assert_eq!(merged.duplicates, 1);
        assert_eq!(merged.confirmed_not_paid, 0);
    }
}
