//! The edge where account ids the store hands over as text (token contracts with pending claims, receivers
//! of pending claims) become `AccountId`s, once. Nothing is dropped silently: a value that does not parse
//! comes back with the reason, and the caller decides what is money-safe — a token contract that does not
//! parse pauses that token (nothing of it is signed), a receiver that does not parse is never asked about or
//! registered (its claim is failed as unpayable when a batch is planned: [`crate::plan`]). "Cannot parse" is
//! never read as "known zero balance" or "no registration needed".

use near_primitives::types::AccountId;

/// A value that is not an account id, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unparsed {
    /// The text as stored.
    pub(crate) value: String,
    /// The parser's reason.
    pub(crate) reason: String,
}

/// Parses `values`: the account ids, in order, and the values that are not one.
pub(crate) fn parse_accounts(values: Vec<String>) -> (Vec<AccountId>, Vec<Unparsed>) {
    let mut ok = Vec::with_capacity(values.len());
    let mut bad = Vec::new();
    for value in values {
        match value.parse::<AccountId>() {
            Ok(id) => ok.push(id),
            Err(e) => bad.push(Unparsed {
                reason: e.to_string(),
                value,
            }),
        }
    }
    (ok, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_come_back_with_their_reason_and_good_ones_in_order() {
        let input = ["token.devnet", "Not Valid", "b.devnet", ""]
            .map(String::from)
            .to_vec();
        let (ok, bad) = parse_accounts(input);
        let ok: Vec<&str> = ok.iter().map(|a| a.as_str()).collect();
        assert_eq!(ok, ["token.devnet", "b.devnet"]);
        let values: Vec<&str> = bad.iter().map(|u| u.value.as_str()).collect();
        assert_eq!(values, ["Not Valid", ""]);
        assert!(bad.iter().all(|u| !u.reason.is_empty()));
    }
}
