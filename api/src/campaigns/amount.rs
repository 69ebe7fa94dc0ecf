//! Amounts a person can read: `"12.5"` token units ↔ the token's smallest unit, exactly, with its
//! `ft_metadata.decimals`. Integer arithmetic on the digits only: no floats anywhere.

/// Why an `amount_tokens` value cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenAmountError {
    /// Empty input.
    #[error("amount_tokens is empty")]
    Empty,
    /// Not `digits` or `digits.digits` (signs, exponents, spaces, commas, a leading or trailing dot).
    #[error("amount_tokens must be a decimal number such as 12.5, written with the digits 0-9 and at most one dot between digits (no sign, exponent, spaces or thousands separators)")]
    Syntax,
    /// More fraction digits than the token has decimals.
    #[error("amount_tokens has {given} decimals; the token has only {decimals}")]
    TooManyDecimals {
        /// fraction digits written
        given: usize,
        /// the token's `ft_metadata.decimals`
        decimals: u8,
    },
    /// The result does not fit in 128 bits.
    #[error(
        "amount_tokens is too large: it does not fit in 128 bits of the token's smallest unit"
    )]
    TooLarge,
}

/// Converts `text` token units to the smallest unit of a token with `decimals` decimals: `"12.5"` with 24
/// decimals is 12 500 000 000 000 000 000 000 000. Trailing zeros past `decimals` are still too many decimals:
/// the file says more than the token can express, and that is worth a look.
pub fn parse_token_amount(text: &str, decimals: u8) -> Result<u128, TokenAmountError> {
    if text.is_empty() {
        return Err(TokenAmountError::Empty);
    }
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, f),
        None => (text, ""),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || (text.contains('.') && !digits(frac)) {
        return Err(TokenAmountError::Syntax);
    }
    if frac.len() > usize::from(decimals) {
        return Err(TokenAmountError::TooManyDecimals {
            given: frac.len(),
            decimals,
        });
    }
    let mut value: u128 = 0;
    let pad = usize::from(decimals) - frac.len();
    let all = int
        .bytes()
        .chain(frac.bytes())
        .chain(std::iter::repeat_n(b'0', pad));
    for b in all {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(b - b'0')))
            .ok_or(TokenAmountError::TooLarge)?;
    }
    Ok(value)
}

/// Shows `raw` smallest units as token units, without trailing zeros: 12 500 000 (6 decimals) is `"12.5"`.
pub fn format_token_amount(raw: u128, decimals: u8) -> String {
    let digits = raw.to_string();
    let d = usize::from(decimals);
    if d == 0 {
        return digits;
    }
    let padded = if digits.len() <= d {
        format!("{}{digits}", "0".repeat(d + 1 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - d);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_exactly() {
        assert_eq!(parse_token_amount("12.5", 24), Ok(125 * 10u128.pow(23)));
        assert_eq!(parse_token_amount("0.35", 24), Ok(35 * 10u128.pow(22)));
        assert_eq!(parse_token_amount("1", 0), Ok(1));
        assert_eq!(parse_token_amount("007.000001", 6), Ok(7_000_001));
        assert_eq!(parse_token_amount("0.000000000000000000000001", 24), Ok(1));
        assert_eq!(parse_token_amount("0", 6), Ok(0));
    }

    #[test]
    fn refuses_too_many_decimals() {
        assert_eq!(
            parse_token_amount("1.0000001", 6),
            Err(TokenAmountError::TooManyDecimals {
                given: 7,
                decimals: 6
            })
        );
        assert_eq!(
            parse_token_amount("1.5", 0),
            Err(TokenAmountError::TooManyDecimals {
                given: 1,
                decimals: 0
            })
        );
    }

    #[test]
    fn refuses_anything_but_plain_decimals() {
        for bad in [
            "", ".5", "5.", "-1", "+1", "1e3", "1,5", "1 000", " 1", "1..2", "1.2.3", "0x10", "١",
        ] {
            assert!(parse_token_amount(bad, 6).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn refuses_overflow() {
        let max = u128::MAX.to_string();
        assert_eq!(parse_token_amount(&max, 0), Ok(u128::MAX));
        assert_eq!(
            parse_token_amount(&format!("{max}0"), 0),
            Err(TokenAmountError::TooLarge)
        );
        assert_eq!(
            parse_token_amount("340282366920939", 24),
            Err(TokenAmountError::TooLarge)
        );
    }

    #[test]
    fn formats_for_people_and_round_trips() {
        assert_eq!(format_token_amount(125 * 10u128.pow(23), 24), "12.5");
        assert_eq!(
            format_token_amount(352_965_013_304_627_826_175_228, 24),
            "0.352965013304627826175228"
        );
        assert_eq!(format_token_amount(1, 24), "0.000000000000000000000001");
        assert_eq!(format_token_amount(0, 6), "0");
        assert_eq!(format_token_amount(42, 0), "42");
        assert_eq!(
            format_token_amount(u128::MAX, 38),
            "3.40282366920938463463374607431768211455"
        );
        for (raw, d) in [
            (1u128, 24u8),
            (10, 1),
            (123_456, 3),
            (u128::MAX, 18),
            (5, 30),
        ] {
            assert_eq!(parse_token_amount(&format_token_amount(raw, d), d), Ok(raw));
        }
    }
}
