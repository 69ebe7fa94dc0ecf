//! The `ft_transfer` memo that ties an on-chain transfer to the claims it pays: `payouts:<id>[,<id>…]`,
//! optionally followed by a space and the claims' own memo (claims are merged into one transfer only when
//! their memos are equal). One transfer paying several claims of the same receiver (coalescing) names every
//! one of them, in ascending order, and its amount is their sum. The distributor writes it; the indexer
//! reads it back.
//!
//! A memo is bounded ([`MAX_MEMO_LEN`]): a transfer takes no more claims than its memo can name, the rest go
//! in another transfer.

use crate::types::ClaimId;

/// Prefix of every memo we write.
pub const MEMO_PREFIX: &str = "payouts:";

/// Longest memo a merged transfer is given (bytes). A single claim's memo may be longer (its own memo).
pub const MAX_MEMO_LEN: usize = 256;

/// The memo for paying claim `id`.
pub fn transfer_memo(id: ClaimId, claim_memo: Option<&str>) -> String {
    transfer_memo_many(&[id], claim_memo)
}

/// The memo for one transfer paying every claim in `ids` (in this order).
pub fn transfer_memo_many(ids: &[ClaimId], claim_memo: Option<&str>) -> String {
    let list = ids
        .iter()
        .map(|id| id.0.to_string())
        .collect::<Vec<_>>()
        .join(",");
    match claim_memo.filter(|m| !m.is_empty()) {
        Some(m) => format!("{MEMO_PREFIX}{list} {m}"),
        None => format!("{MEMO_PREFIX}{list}"),
    }
}

/// Length of [`transfer_memo_many`] for claims `ids` without building it.
pub fn memo_len(ids: &[ClaimId], claim_memo: Option<&str>) -> usize {
    let digits: usize = ids.iter().map(|id| id.0.to_string().len()).sum();
    let commas = ids.len().saturating_sub(1);
    let own = claim_memo
        .filter(|m| !m.is_empty())
        .map_or(0, |m| m.len() + 1);
    MEMO_PREFIX.len() + digits + commas + own
}

/// The claim id in a memo naming exactly one claim.
pub fn claim_id_from_memo(memo: &str) -> Option<ClaimId> {
    match claim_ids_from_memo(memo)?.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// The claim ids in a memo we wrote, if it is one: every id positive, none twice (anything else is not
/// ours and names nothing).
pub fn claim_ids_from_memo(memo: &str) -> Option<Vec<ClaimId>> {
    let rest = memo.strip_prefix(MEMO_PREFIX)?;
    let list = rest.split(' ').next()?;
    let mut ids = Vec::new();
    for part in list.split(',') {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let id = part.parse::<i64>().ok().filter(|id| *id > 0)?;
        if ids.contains(&ClaimId(id)) {
            return None;
        }
        ids.push(ClaimId(id));
    }
    Some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(transfer_memo(ClaimId(42), None), "payouts:42");
        assert_eq!(
            transfer_memo(ClaimId(42), Some("thanks")),
            "payouts:42 thanks"
        );
        assert_eq!(claim_id_from_memo("payouts:42"), Some(ClaimId(42)));
        assert_eq!(claim_id_from_memo("payouts:42 thanks"), Some(ClaimId(42)));
        for other in [
            "",
            "payouts:",
            "payouts:x",
            "payouts:-1",
            "payouts:0",
            "42",
            "payouts:99999999999999999999",
            "payouts:1,2",
        ] {
            assert_eq!(claim_id_from_memo(other), None, "{other}");
        }
    }

    #[test]
    fn merged_memos_name_every_claim() {
        let ids = [ClaimId(12), ClaimId(13), ClaimId(40)];
        let m = transfer_memo_many(&ids, None);
        assert_eq!(m, "payouts:12,13,40");
        assert_eq!(memo_len(&ids, None), m.len());
        assert_eq!(claim_ids_from_memo(&m), Some(ids.to_vec()));
        let m = transfer_memo_many(&ids, Some("airdrop 3"));
        assert_eq!(m, "payouts:12,13,40 airdrop 3");
        assert_eq!(memo_len(&ids, Some("airdrop 3")), m.len());
        assert_eq!(claim_ids_from_memo(&m), Some(ids.to_vec()));
        for bad in [
            "payouts:1,",
            "payouts:,1",
            "payouts:1,,2",
            "payouts:1,1",
            "payouts:1,0",
            "payouts:1,x",
            "payouts:1, 2",
        ] {
            assert_eq!(claim_ids_from_memo(bad), None, "{bad}");
        }
    }
}
