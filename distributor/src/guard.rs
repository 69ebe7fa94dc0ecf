//! The money guards: the daily cap of a token and the treasury's balance, checked and reserved atomically
//! for every lane of every process, and failing closed.
//!
//! # The rules
//! - **Daily cap** (`[distributor] daily_caps`): the amounts of the batches of a token signed during one UTC
//!   day (the database's clock: `now()` of the DB transaction that stores the batch) never add up to more
//!   than its cap, counting every batch that is in flight or paid and not counting those known to have paid
//!   nothing (proven dead, or whose receipt failed). A batch counts against the day it was signed on, however
//!   late it is confirmed.
//! - **Balance guard**: a batch of a token is signed only when the treasury's balance of that token, as read
//!   from the node, covers it together with everything of that token still in flight (open in the store, or
//!   succeeded within [`BALANCE_SETTLE_SLACK`] before the balance was read, which a lagging node's answer may
//!   not show yet).
//! - **Fail closed**: a token whose balance cannot be read (none read in the last [`BALANCE_MAX_AGE`]) is not
//!   signed for: the lane marks it blocked with the reason (status page `paused_reason`, log, metric
//!   `balance_unknown`). The same holds for the NEAR balance (the runner pauses every lane until it has read
//!   it, and after [`BALANCE_MAX_AGE`] without a fresh answer).
//!
//! # Why concurrent lanes cannot each spend the whole cap
//! Every batch is prepared in one DB transaction ([`crate::prepare`]) that, after locking its claims, takes
//! the token's spend lock ([`payouts_store::spend::lock_spend`]: `pg_advisory_xact_lock` on the token's name,
//! the same key in every process sharing the database), then reads the day's reservation (`daily_spend`) and
//! the amount in flight, sizes the batch to fit both budgets, stores the signed batch with its amount and day,
//! adds the amount to `daily_spend` (one statement that refuses to pass the cap), and commits, which releases
//! the lock. A second lane of any process blocks on the lock until the first has committed or rolled back;
//! its reads are new snapshots taken after that, so they see the first reservation. So reservations of one
//! token are serialised and each is checked against all earlier ones: their sum never passes the cap, and a
//! batch's total never passes the balance less what is in flight. A crash between sign and commit leaves
//! nothing: no row, no reservation, nothing broadcast (broadcast happens only after the commit).
//!
//! A reservation is released only in the DB transaction that moves its transaction to `dropped`
//! ([`payouts_store::transactions::bury`], after the death proof) or `failed` (settlement of a failed
//! receipt); both moves are guarded by the transaction's state, so each happens once and the release with it.
//! A successful transaction keeps its reservation. Releasing can only lower the sum, so it needs no lock.
//!
//! Tests that try to break it: `distributor/tests/it/guards.rs` (4 lanes × 2 processes against one cap,
//! sampled while they run; an unknown balance stops signing; a transient failure is paid once later) and
//! `store/tests/it/spend.rs`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use payouts_store::claims::Claim;
use payouts_store::spend::SpendState;
use payouts_store::Yocto;

/// How long a successful transaction still counts as in flight for the balance guard after a balance read:
/// the node that answered may lag the indexer by a few blocks (its balance not showing the transfer yet).
pub const BALANCE_SETTLE_SLACK: Duration = Duration::from_secs(10);

/// A balance older than this is unknown: nothing is signed on it.
pub const BALANCE_MAX_AGE: Duration = Duration::from_secs(10);

/// The treasury's balance of a token as the node answered, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBalance {
    /// The balance.
    pub amount: Yocto,
    /// When it was read (this process's clock; [`BALANCE_SETTLE_SLACK`] covers the skew to the database's).
    pub read_at: DateTime<Utc>,
}

impl TokenBalance {
    /// Transactions that succeeded after this moment count as in flight against this balance.
    pub fn counts_successes_since(&self) -> DateTime<Utc> {
        self.read_at - chrono::Duration::from_std(BALANCE_SETTLE_SLACK).unwrap_or_default()
    }
}

/// How much the next batch may pay, and which guard binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    /// `None`: no guard applies.
    pub(crate) most: Option<Yocto>,
    cap_left: Option<Yocto>,
    balance_left: Option<Yocto>,
}

impl Budget {
    /// The budget under the spend lock: the cap left today and the balance left after what is in flight.
    pub(crate) fn new(
        spend: &SpendState,
        balance: Option<TokenBalance>,
        cap: Option<Yocto>,
    ) -> Self {
        let cap_left = cap.map(|c| Yocto(c.0.saturating_sub(spend.reserved_today.0)));
        let balance_left = balance.map(|b| Yocto(b.amount.0.saturating_sub(spend.in_flight.0)));
        let most = match (cap_left, balance_left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Self {
            most,
            cap_left,
            balance_left,
        }
    }

    /// How many of `claims` (in order) fit.
    pub(crate) fn fits(&self, claims: &[Claim]) -> usize {
        let Some(most) = self.most else {
            return claims.len();
        };
        let mut total: u128 = 0;
        claims
            .iter()
            .take_while(|c| match total.checked_add(c.amount.0) {
                Some(t) if t <= most.0 => {
                    total = t;
                    true
                }
                _ => false,
            })
            .count()
    }

    /// Why nothing fits, for operators.
    pub(crate) fn blocked_reason(&self, token: &str, spend: &SpendState, next: Yocto) -> String {
        match (self.cap_left, self.balance_left) {
            (Some(c), b) if b.is_none_or(|b| c <= b) => format!(
                "daily cap of {token} reached: {} reserved today (UTC), {c} left, next claim needs {next}",
                spend.reserved_today
            ),
            _ => format!(
                "{token} balance too low: {} left after {} in flight, next claim needs {next}",
                self.balance_left.unwrap_or_default(),
                spend.in_flight
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spend(reserved: u128, in_flight: u128) -> SpendState {
        SpendState {
            day: chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
            reserved_today: Yocto(reserved),
            in_flight: Yocto(in_flight),
        }
    }

    fn balance(amount: u128) -> Option<TokenBalance> {
        Some(TokenBalance {
            amount: Yocto(amount),
            read_at: Utc::now(),
        })
    }

    #[test]
    fn the_tighter_guard_binds_and_says_so() {
        let s = spend(900, 50);
        let b = Budget::new(&s, balance(1_000), Some(Yocto(1_000)));
        assert_eq!(b.most, Some(Yocto(100)));
        assert!(b.blocked_reason("t", &s, Yocto(200)).contains("daily cap"));
        let b = Budget::new(&s, balance(120), Some(Yocto(1_000)));
        assert_eq!(b.most, Some(Yocto(70)));
        assert!(b
            .blocked_reason("t", &s, Yocto(200))
            .contains("balance too low"));
        assert_eq!(Budget::new(&s, None, None).most, None);
        // Past the cap (a cap lowered during the day): nothing left, not an underflow.
        assert_eq!(Budget::new(&s, None, Some(Yocto(10))).most, Some(Yocto(0)));
    }
}
