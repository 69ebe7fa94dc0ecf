//! When claims landed on chain: the timestamp of the block whose receipt applied the `ft_transfer` that paid
//! each claim (the devnet's ledger), against the claim's creation. This is what a receiver sees; the
//! pending → confirmed latency adds finality (two blocks on nearcore) and indexing on top.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use payouts_store::memo::claim_ids_from_memo;

use crate::report::Latency;

/// p50 / p95 / p99 of created → landed, seconds, over the claims of `claims` that a transfer of `transfers`
/// (memo, block height) paid, with block timestamps from `block_ts` (height → nanoseconds). `None` without
/// any such claim.
pub(crate) fn landing_latency<'a, T>(
    transfers: impl IntoIterator<Item = (Option<&'a str>, u64)>,
    block_ts: &HashMap<u64, u64>,
    claims: &HashMap<i64, T>,
    created: impl Fn(&T) -> DateTime<Utc>,
) -> Option<Latency> {
    let mut secs: Vec<f64> = Vec::new();
    for (memo, height) in transfers {
        let (Some(ids), Some(ts)) = (memo.and_then(claim_ids_from_memo), block_ts.get(&height))
        else {
            continue;
        };
        let landed = DateTime::<Utc>::from_timestamp_nanos(i64::try_from(*ts).ok()?);
        for id in ids {
            if let Some(c) = claims.get(&id.0) {
                let d = landed - created(c);
                // Display only: precision loss is fine.
                secs.push(d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6);
            }
        }
    }
    if secs.is_empty() {
        return None;
    }
    secs.sort_by(f64::total_cmp);
    let at = |q: f64| secs[((secs.len() - 1) as f64 * q).round() as usize];
    Some(Latency {
        p50_s: at(0.50),
        p95_s: at(0.95),
        p99_s: at(0.99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landing_is_block_time_minus_creation_for_every_claim_a_memo_names() {
        let t0 = DateTime::<Utc>::from_timestamp(1_000, 0).unwrap();
        let claims: HashMap<i64, DateTime<Utc>> = (1..=20).map(|i| (i, t0)).collect();
        // Block 5 at t0 + 1 s pays claims 1..=19 in one merged memo; block 6 at t0 + 3 s pays claim 20.
        let memo: String = format!(
            "payouts:{}",
            (1..=19)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let ts: HashMap<u64, u64> = [(5, 1_001_000_000_000), (6, 1_003_000_000_000)].into();
        let l = landing_latency(
            [
                (Some(memo.as_str()), 5),
                (Some("payouts:20"), 6),
                (Some("not ours"), 6),
            ],
            &ts,
            &claims,
            |c| *c,
        )
        .unwrap();
        assert_eq!(l.p50_s, 1.0);
        assert_eq!(l.p95_s, 1.0);
        assert_eq!(l.p99_s, 3.0);
        assert!(landing_latency([(Some("payouts:1"), 9)], &ts, &claims, |c| *c).is_none());
    }
}
