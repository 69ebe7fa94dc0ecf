//! Who the bench's claims pay: a small set drawn again and again (repeat-heavy, like a busy service's
//! traffic: coalescing merges their claims) or a new receiver for every claim (an airdrop: nothing to merge).

use std::str::FromStr;

/// How receivers are drawn (`--receivers 500` or `--receivers distinct`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receivers {
    /// Claim `i` pays the `i mod n`-th registered user.
    Pool(u32),
    /// Claim `i` pays the `i`-th registered user: every claim its own receiver.
    Distinct,
}

impl Receivers {
    /// The receiver of claim `i` (registered users are the even-numbered ones).
    pub fn of(&self, i: u64) -> String {
        let n = match self {
            Receivers::Pool(k) => i % u64::from((*k).max(1)),
            Receivers::Distinct => i,
        };
        format!("user-{}.devnet", 2 * n)
    }

    /// Generated devnet users needed for `claims` claims (`None`: the built-in 1,000 are enough).
    pub fn users_needed(&self, claims: u64) -> Option<u32> {
        let registered = match self {
            Receivers::Pool(k) => u64::from(*k),
            Receivers::Distinct => claims,
        };
        let users = registered.saturating_mul(2);
        (users > 1_000).then(|| u32::try_from(users).unwrap_or(u32::MAX))
    }

    /// For the report.
    pub fn name(&self) -> String {
        match self {
            Receivers::Pool(k) => format!("repeat-heavy ({k} receivers)"),
            Receivers::Distinct => "all distinct".into(),
        }
    }
}

impl FromStr for Receivers {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "distinct" {
            return Ok(Receivers::Distinct);
        }
        match s.parse::<u32>() {
            Ok(n) if n > 0 => Ok(Receivers::Pool(n)),
            _ => Err(format!(
                "`{s}`: a number of receivers (at least 1) or `distinct`"
            )),
        }
    }
}

/// Claims and transfers landed, apart: claims/s is what users feel, transfers/s what the chain carries.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Landed {
    /// Claims confirmed per second (first claim → last confirmation).
    pub claims_per_s: f64,
    /// `ft_transfer`s on the ledger per second over the same span.
    pub transfers_per_s: f64,
    /// Claims per transfer (1 without coalescing).
    pub claims_per_transfer: f64,
}

impl Landed {
    /// From `claims` confirmed and `transfers` on the ledger over `span_s` seconds.
    pub fn new(claims: i64, transfers: u64, span_s: f64) -> Self {
        let span = span_s.max(1e-9);
        Landed {
            claims_per_s: claims as f64 / span,
            transfers_per_s: transfers as f64 / span,
            claims_per_transfer: claims as f64 / (transfers.max(1)) as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_parse_and_draw() {
        assert_eq!("500".parse::<Receivers>(), Ok(Receivers::Pool(500)));
        assert_eq!("distinct".parse::<Receivers>(), Ok(Receivers::Distinct));
        assert!("0".parse::<Receivers>().is_err());
        assert!("many".parse::<Receivers>().is_err());
        let pool = Receivers::Pool(500);
        assert_eq!(pool.of(3), "user-6.devnet");
        assert_eq!(pool.of(503), "user-6.devnet");
        assert_eq!(pool.users_needed(1_000_000), None);
        assert_eq!(Receivers::Distinct.of(503), "user-1006.devnet");
        assert_eq!(Receivers::Distinct.users_needed(30_000), Some(60_000));
        assert_eq!(Receivers::Distinct.users_needed(100), None);
    }

    #[test]
    fn claims_and_transfers_apart() {
        let l = Landed::new(1_500, 1_000, 2.0);
        assert_eq!(l.claims_per_s, 750.0);
        assert_eq!(l.transfers_per_s, 500.0);
        assert_eq!(l.claims_per_transfer, 1.5);
    }
}
