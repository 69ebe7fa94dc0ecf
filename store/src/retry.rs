//! Which contract failures are final. A failed receipt paid nothing (its actions revert together), so handing
//! its claims back is always safe for exactly-once; failing them is what loses a payout. So a claim that failed
//! alone is `failed` only for an error that can never pass (a permanent contract error); for a transient one
//! (the token contract paused, the treasury's token balance short, a receiver not registered yet) it goes back
//! to `pending` and waits, with exponential back-off, for at most [`MAX_RETRIES`] such failures before it is
//! `failed` with a message that says so. Errors that concern the whole batch (paused, balance, and a receipt
//! that ran out of its prepaid gas, which the distributor answers with more gas: [`crate::gas`]) hand the
//! whole batch back without bisecting it: splitting would only fail every half the same way.
//!
//! Tests that try to break it: `store/tests/it/reconcile.rs` (transient failures held, permanent ones final,
//! the bound) and `distributor/tests/it/guards.rs` (a transfer that failed for the treasury's balance is paid
//! once after a top-up).

use diesel::sql_types::{Array, BigInt, Integer, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::error::Result;
use crate::types::ClaimId;

/// Transient failures of one claim before it is failed for good.
pub const MAX_RETRIES: i32 = 12;

/// How the message of a claim failed after [`MAX_RETRIES`] transient failures starts (`retry-failed` of a
/// campaign looks for it: see `crate::campaigns::retry`).
pub const GAVE_UP_PREFIX: &str = "gave up after ";

/// How the message of a claim failed because its receiver is not registered and the distributor does not
/// register receivers ends.
pub const REGISTRATION_OFF_SUFFIX: &str = " (distributor.register_receivers is off)";

/// Longest wait before a held claim is tried again (seconds); the wait doubles from 1 s up to this.
pub const MAX_RETRY_DELAY_SECS: i32 = 600;

/// What a contract's failure message says about trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Can never pass: bad arguments, a missing method or contract, the receiver equal to the sender.
    Permanent,
    /// The token contract is paused.
    Paused,
    /// The treasury's token balance is short (the balance guard's estimate was behind the chain).
    Balance,
    /// The receiver is not registered with the token (registration can fix it).
    Registration,
    /// The receipt ran out of its prepaid gas: the whole batch is signed again with more
    /// ([`crate::gas`]; the distributor learns from it).
    Gas,
    /// Not recognised: tried again, a bounded number of times.
    Unknown,
}

impl FailureKind {
    /// Classifies a failure message (the receipt's error, e.g. `Smart contract panicked: …`).
    pub fn classify(message: &str) -> Self {
        let m = message.to_ascii_lowercase();
        const PERMANENT: [&str; 9] = [
            "sender and receiver should be different",
            "the amount should be a positive number",
            "balance overflow",
            "failed to deserialize",
            "requires attached deposit of exactly 1 yoctonear",
            "methodnotfound",
            "method not found",
            "codedoesnotexist",
            "accountdoesnotexist",
        ];
        if crate::gas::is_out_of_gas(&m) {
            FailureKind::Gas
        } else if m.contains("paused") {
            FailureKind::Paused
        } else if m.contains("not registered") {
            FailureKind::Registration
        } else if m.contains("doesn't have enough balance") || m.contains("not enough balance") {
            FailureKind::Balance
        } else if PERMANENT.iter().any(|p| m.contains(p)) {
            FailureKind::Permanent
        } else {
            FailureKind::Unknown
        }
    }

    /// The `claims.retry_kind` value (`None` for permanent errors).
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            FailureKind::Permanent => None,
            FailureKind::Paused => Some("paused"),
            FailureKind::Balance => Some("balance"),
            FailureKind::Registration => Some("registration"),
            FailureKind::Gas => Some("gas"),
            FailureKind::Unknown => Some("unknown"),
        }
    }

    /// True when the error concerns the batch as a whole, not one of its claims.
    pub fn batch_wide(self) -> bool {
        matches!(
            self,
            FailureKind::Paused | FailureKind::Balance | FailureKind::Gas
        )
    }
}

/// What [`hold`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// Back to `pending`, waiting for `retry_at`.
    pub held: usize,
    /// Past [`MAX_RETRIES`]: `failed`.
    pub failed: usize,
}

/// Hands the claims `ids` that transaction `tx_hash` still carries back to `pending` after a transient
/// failure: `attempts` and `retries` + 1, `retry_at` = now + 2^retries s (at most
/// [`MAX_RETRY_DELAY_SECS`]); those that reach [`MAX_RETRIES`] are `failed`, saying so. They keep their
/// isolation flag and split group.
pub(crate) async fn hold(
    conn: &mut AsyncPgConnection,
    tx_hash: &str,
    ids: &[ClaimId],
    kind: FailureKind,
    error: &str,
) -> Result<Held> {
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let kind = kind.as_str().unwrap_or("unknown");
    let held = diesel::sql_query(
        "UPDATE claims SET status = 'pending', attempts = attempts + 1, retries = retries + 1, \
           last_error = $1, retry_kind = $2, \
           retry_at = now() + make_interval(secs => LEAST(power(2, LEAST(retries, 30)), $3)), \
           updated_at = now() \
         WHERE id = ANY($4) AND status = 'submitted' AND current_tx_hash = $5 AND retries + 1 < $6",
    )
    .bind::<Text, _>(error)
    .bind::<Text, _>(kind)
    .bind::<Integer, _>(MAX_RETRY_DELAY_SECS)
    .bind::<Array<BigInt>, _>(&ids)
    .bind::<Text, _>(tx_hash)
    .bind::<Integer, _>(MAX_RETRIES)
    .execute(conn)
    .await?;
    let gave_up = format!("{GAVE_UP_PREFIX}{MAX_RETRIES} transient failures; last: {error}");
    let failed = diesel::sql_query(
        "UPDATE claims SET status = 'failed', attempts = attempts + 1, retries = retries + 1, \
           last_error = $1, retry_kind = $2, retry_at = NULL, updated_at = now() \
         WHERE id = ANY($3) AND status = 'submitted' AND current_tx_hash = $4",
    )
    .bind::<Text, _>(&gave_up)
    .bind::<Text, _>(kind)
    .bind::<Array<BigInt>, _>(&ids)
    .bind::<Text, _>(tx_hash)
    .execute(conn)
    .await?;
    Ok(Held { held, failed })
}

#[cfg(test)]
mod tests {
    use super::FailureKind::*;
    use super::*;

    #[test]
    fn messages_of_the_reference_ft_contract_are_classified() {
        let cases = [
            (
                "Smart contract panicked: The account bob.near is not registered",
                Registration,
            ),
            (
                "Smart contract panicked: The account doesn't have enough balance",
                Balance,
            ),
            ("Smart contract panicked: Pausable: paused", Paused),
            ("Smart contract panicked: The contract is paused", Paused),
            (
                "Smart contract panicked: Sender and receiver should be different",
                Permanent,
            ),
            (
                "Smart contract panicked: The amount should be a positive number",
                Permanent,
            ),
            (
                "Smart contract panicked: Requires attached deposit of exactly 1 yoctoNEAR",
                Permanent,
            ),
            (
                "Smart contract panicked: Failed to deserialize input from JSON.",
                Permanent,
            ),
            ("Exceeded the prepaid gas.", Gas),
            ("something new", Unknown),
        ];
        for (msg, kind) in cases {
            assert_eq!(FailureKind::classify(msg), kind, "{msg}");
        }
        assert!(Paused.batch_wide() && Balance.batch_wide() && Gas.batch_wide());
        assert_eq!(Gas.as_str(), Some("gas"));
        assert!(!Registration.batch_wide() && !Unknown.batch_wide() && !Permanent.batch_wide());
        assert_eq!(Permanent.as_str(), None);
    }
}
