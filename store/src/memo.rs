//! The `ft_transfer` memo that ties an on-chain transfer to its claim: `payouts:<claim id>`, optionally
//! followed by a space and the claim's own memo. The distributor writes it; the indexer reads it back.

use crate::types::ClaimId;

/// Prefix of every memo we write.
pub const MEMO_PREFIX: &str = "payouts:";

/// The memo for paying claim `id`.
pub fn transfer_memo(id: ClaimId, claim_memo: Option<&str>) -> String {
    match claim_memo.filter(|m| !m.is_empty()) {
        Some(m) => format!("{MEMO_PREFIX}{} {m}", id.0),
        None => format!("{MEMO_PREFIX}{}", id.0),
    }
}

/// The claim id in a memo we wrote, if it is one.
pub fn claim_id_from_memo(memo: &str) -> Option<ClaimId> {
    let rest = memo.strip_prefix(MEMO_PREFIX)?;
    let digits = rest.split(' ').next()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok().filter(|id| *id > 0).map(ClaimId)
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
        ] {
            assert_eq!(claim_id_from_memo(other), None, "{other}");
        }
    }
}
