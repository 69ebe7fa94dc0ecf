//! `retry-failed`: which failed claims of a campaign may be queued again, and the proof that doing so can
//! never pay a row twice.
//!
//! # Which failures are retryable ([`retryable`])
//! Decided from the stored failure message alone, whose two retryable forms this crate writes itself:
//! - `gave up after N transient failures; last: …` ([`crate::retry::GAVE_UP_PREFIX`]): the token was paused,
//!   the treasury's balance short, the receipt out of gas, or an unrecognised error, [`crate::retry::MAX_RETRIES`]
//!   times — retryable; when the transient failure was a missing registration (`retry_kind = registration`),
//!   only if the distributor registers receivers.
//! - `… (distributor.register_receivers is off)` ([`crate::retry::REGISTRATION_OFF_SUFFIX`]): the receiver is
//!   not registered with the token — retryable only if the distributor registers receivers.
//! - Anything else is final: a permanent contract error (invalid account, amount refused), a planner refusal
//!   before signing (bad account id, above the per-transfer maximum, token not allowed), a rejected campaign.
//!
//! # Why re-queueing is safe (exactly once)
//! A claim is `failed` in three ways only: (i) its current transaction's receipt failed on chain
//! (`reconcile::settle`, transaction `failed`: included once, its nonce consumed, its actions reverted — those
//! bytes can never pay), (ii) the distributor refused it while it was `pending`, before signing anything, or
//! (iii) a rejection while `held` (never signed). In (ii) every earlier transaction of the claim was already
//! proven dead before the claim went back to `pending` (distributor/src/death.rs, rule 2: a claim returns to
//! `pending` only when its transaction's receipt failed or the indexed final chain proved it dead). So no
//! transaction of a failed claim can still land, and the distributor's next transaction for it is the only
//! live one. [`retry_failed`] does not rely on that reasoning alone: under a row lock on the claims it
//! re-queues a claim only when (a) its current transaction, if any, is `failed` or `dropped`, (b) no stored
//! transaction listing it in `claim_ids` is in any other status (signed, submitted, included — possibly
//! still landing — or final — paid), and (c) no incident names it or a transaction listing it (a payment the
//! store did not expect, e.g. a transaction declared dead that landed). Test that tries to break it: store `it::campaign_retry` (a failed claim whose transaction is still
//! `submitted`, `included` or `final` is never re-queued).

use diesel::sql_types::{Array, BigInt, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::error::{Result, StoreError};
use crate::retry::{GAVE_UP_PREFIX, REGISTRATION_OFF_SUFFIX};

/// What `retry-failed` may do with a failed claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retryable {
    /// Queue it again: the failure was transient.
    Yes,
    /// Only if the distributor registers receivers (the receiver was not registered).
    IfRegistering,
    /// Never: the failure is final.
    No,
}

impl Retryable {
    /// Whether to retry, given whether the distributor registers receivers (`None`: not known → no).
    pub fn given(self, registering: Option<bool>) -> bool {
        match self {
            Retryable::Yes => true,
            Retryable::IfRegistering => registering == Some(true),
            Retryable::No => false,
        }
    }
}

/// Classifies a failed claim by its stored failure (`last_error`, `retry_kind`; see the module doc).
pub fn retryable(last_error: Option<&str>, retry_kind: Option<&str>) -> Retryable {
    let Some(error) = last_error else {
        return Retryable::No;
    };
    if error.starts_with(GAVE_UP_PREFIX) {
        if retry_kind == Some("registration") {
            Retryable::IfRegistering
        } else {
            Retryable::Yes
        }
    } else if error.ends_with(REGISTRATION_OFF_SUFFIX) {
        Retryable::IfRegistering
    } else {
        Retryable::No
    }
}

/// What [`retry_failed`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retried {
    /// Failed claims of the campaign looked at.
    pub failed: usize,
    /// Re-queued (`failed → pending`).
    pub requeued: usize,
    /// Left failed: the failure is final.
    pub not_retryable: usize,
    /// Left failed although retryable: a transaction listing it is not provably dead, or an incident names it.
    pub unsafe_to_retry: usize,
}

/// Re-queues the retryable failed claims of campaign `id` (on behalf of API token `by`), in one DB
/// transaction. `registering`: whether the distributor registers receivers (`None` when not known).
pub async fn retry_failed(
    conn: &mut AsyncPgConnection,
    id: i64,
    by: &str,
    registering: Option<bool>,
) -> Result<Retried> {
    #[derive(diesel::QueryableByName)]
    struct Failed {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Nullable<Text>)]
        last_error: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        retry_kind: Option<String>,
    }
    conn.transaction(async |conn| {
        let failed: Vec<Failed> = diesel::sql_query(
            "SELECT id, last_error, retry_kind FROM claims \
             WHERE campaign_id = $1 AND status = 'failed' ORDER BY id FOR UPDATE",
        )
        .bind::<BigInt, _>(id)
        .load(conn)
        .await?;
        let wanted: Vec<i64> = failed
            .iter()
            .filter(|c| {
                retryable(c.last_error.as_deref(), c.retry_kind.as_deref()).given(registering)
            })
            .map(|c| c.id)
            .collect();
        let mut out = Retried {
            failed: failed.len(),
            not_retryable: failed.len() - wanted.len(),
            ..Retried::default()
        };
        if wanted.is_empty() {
            return Ok::<_, StoreError>(out);
        }
        // (a), (b), (c) of the module doc. The transactions listing any wanted claim are found in one pass
        // (`&&` on the arrays), not one look-up per claim.
        let requeued = diesel::sql_query(
            "WITH live AS ( \
               SELECT DISTINCT unnest(t.claim_ids) AS id FROM transactions t \
               WHERE t.claim_ids && $1::bigint[] AND t.status NOT IN ('failed', 'dropped')) \
             UPDATE claims c SET status = 'pending', retries = 0, retry_kind = NULL, retry_at = NULL, \
               last_error = 're-queued by ' || $2 || ' after: ' || coalesce(c.last_error, ''), \
               updated_at = now() \
             WHERE c.id = ANY($1) AND c.status = 'failed' AND c.campaign_id = $3 \
               AND (c.current_tx_hash IS NULL OR EXISTS ( \
                     SELECT 1 FROM transactions t WHERE t.hash = c.current_tx_hash \
                     AND t.status IN ('failed', 'dropped'))) \
               AND NOT EXISTS (SELECT 1 FROM live WHERE live.id = c.id) \
               AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.claim_id = c.id) \
               AND NOT EXISTS (SELECT 1 FROM incidents i JOIN transactions t ON t.hash = i.tx_hash \
                               WHERE c.id = ANY(t.claim_ids))",
        )
        .bind::<Array<BigInt>, _>(&wanted)
        .bind::<Text, _>(by)
        .bind::<BigInt, _>(id)
        .execute(conn)
        .await?;
        // A settled campaign's counts change only here: the API caches them keyed by `updated_at`.
        diesel::sql_query("UPDATE campaigns SET updated_at = now() WHERE id = $1")
            .bind::<BigInt, _>(id)
            .execute(conn)
            .await?;
        out.requeued = requeued;
        out.unsafe_to_retry = wanted.len() - requeued;
        tracing::info!(
            campaign = id,
            by,
            requeued,
            not_retryable = out.not_retryable,
            unsafe_to_retry = out.unsafe_to_retry,
            "failed campaign claims re-queued"
        );
        Ok(out)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_failures_are_classified() {
        let gave_up = format!("{GAVE_UP_PREFIX}12 transient failures; last: not enough balance");
        assert_eq!(retryable(Some(&gave_up), Some("balance")), Retryable::Yes);
        assert_eq!(
            retryable(Some(&gave_up), Some("registration")),
            Retryable::IfRegistering
        );
        let off = format!("The account x is not registered{REGISTRATION_OFF_SUFFIX}");
        assert_eq!(
            retryable(Some(&off), Some("registration")),
            Retryable::IfRegistering
        );
        for permanent in [
            "Smart contract panicked: The amount should be a positive number",
            "campaign rejected by treasurer: no",
            "receiver `x` is not a valid account id",
        ] {
            assert_eq!(retryable(Some(permanent), Some("balance")), Retryable::No);
        }
        assert_eq!(retryable(None, None), Retryable::No);
        assert!(Retryable::Yes.given(None));
        assert!(!Retryable::IfRegistering.given(None));
        assert!(!Retryable::IfRegistering.given(Some(false)));
        assert!(Retryable::IfRegistering.given(Some(true)));
    }
}
