//! What a lane knows of one transaction in flight ([`InFlight`]), the answers about it that reach the lane
//! ([`Event`]), and the back-off rules: re-broadcasts of a transaction in doubt, and the lane's pause after a
//! congestion rejection.
//!
//! A transaction's state is two enums, not flags: what is known of it ([`Known`]: signed and stored,
//! accepted by a node, included in a block — it only moves forward) and the one RPC call out for it at a time
//! ([`Asking`]: nothing, a broadcast, a `tx` lookup). A death proof ([`Proof`]) runs beside them.

use std::time::Duration;

use near_primitives::hash::CryptoHash;
use near_primitives::transaction::SignedTransaction;
use tokio::time::Instant;

use crate::chain::{Lookup, RpcFailure, Sent};
use crate::death::Verdict;

/// What is known of a transaction in flight; it only moves forward ([`InFlight::advance`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Known {
    /// Signed and stored; no node has accepted it yet (as far as we know).
    Signed,
    /// A node accepted it (or the store says `submitted`): it may sit in a pool.
    Submitted,
    /// The store shows it in a block (the indexer saw it); only its outcome is awaited.
    Included,
}

/// The RPC call out for a transaction: at most one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asking {
    /// None: it may be re-broadcast or looked up when due.
    Nothing,
    /// A broadcast (`send_tx` waiting for inclusion) is out.
    Sending,
    /// A `tx` status lookup is out.
    LookingUp,
}

/// The death proof of a transaction ([`crate::death`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Proof {
    /// None is being gathered; the next may start at `next` (`None`: whenever one is called for).
    Idle {
        /// Not before this.
        next: Option<Instant>,
    },
    /// One is being gathered.
    Gathering,
}

/// One transaction of the lane, from stored to settled (or proven dead).
pub(super) struct InFlight {
    pub(super) tx: SignedTransaction,
    pub(super) hash: CryptoHash,
    pub(super) stored_at: Instant,
    pub(super) last_sent: Option<Instant>,
    pub(super) last_lookup: Option<Instant>,
    pub(super) known: Known,
    pub(super) asking: Asking,
    /// Answers that put it in doubt (rejections, "unknown"): each doubles the re-broadcast interval.
    pub(super) doubts: u32,
    pub(super) proof: Proof,
}

impl InFlight {
    pub(super) fn new(tx: SignedTransaction, known: Known) -> Self {
        Self {
            hash: tx.get_hash(),
            tx,
            stored_at: Instant::now(),
            last_sent: None,
            last_lookup: None,
            known,
            asking: Asking::Nothing,
            doubts: 0,
            proof: Proof::Idle { next: None },
        }
    }

    /// Moves what is known forward to `to` (never back: a late "pending" answer does not undo an inclusion).
    /// Whether it moved.
    pub(super) fn advance(&mut self, to: Known) -> bool {
        let moved = to > self.known;
        if moved {
            self.known = to;
        }
        moved
    }

    /// Whether it is in a block already.
    pub(super) fn included(&self) -> bool {
        self.known == Known::Included
    }

    /// The call out for it, `what`, has answered.
    pub(super) fn answered(&mut self, what: Asking) {
        if self.asking == what {
            self.asking = Asking::Nothing;
        }
    }

    /// The wait before the next re-broadcast: `base` doubled per doubt, capped, with up to 25 % jitter so
    /// lanes that were rejected together do not come back together.
    pub(super) fn backoff(&self, base: Duration, cap: Duration) -> Duration {
        let factor = 1u32 << self.doubts.min(10);
        let d = base.saturating_mul(factor).min(cap.max(base));
        if self.doubts == 0 {
            return d;
        }
        let jitter = rand::random::<u32>() % 256;
        d + d.mul_f64(f64::from(jitter) / 1024.0)
    }

    /// Whether the same bytes are due to be broadcast again (never broadcast yet, or the back-off passed).
    pub(super) fn resend_due(&self, base: Duration, cap: Duration) -> bool {
        self.last_sent
            .is_none_or(|t| t.elapsed() >= self.backoff(base, cap))
    }

    /// Whether a death proof may start now: not included, none running, in doubt or `late`, and its
    /// back-off passed.
    pub(super) fn proof_due(&self, late: bool, now: Instant) -> bool {
        let idle_and_due = match self.proof {
            Proof::Idle { next } => next.is_none_or(|t| now >= t),
            Proof::Gathering => false,
        };
        !self.included() && idle_and_due && (self.doubts > 0 || late)
    }
}

/// An answer about a transaction of the lane, from a task the lane spawned.
pub(super) enum Event {
    Sent(CryptoHash, Instant, Result<Sent, RpcFailure>),
    Looked(CryptoHash, Result<Lookup, RpcFailure>),
    Proved(CryptoHash, Verdict),
}

/// The lane's pause after its `n`-th congestion rejection in a row: 500 ms doubled per rejection, at most
/// `cap`, with up to 50 % jitter so lanes rejected together do not come back together.
pub(super) fn congestion_pause(n: u32, cap: Duration) -> Duration {
    let base = Duration::from_millis(500);
    let d = base
        .saturating_mul(1u32 << n.saturating_sub(1).min(10))
        .min(cap.max(base));
    d + d.mul_f64(f64::from(rand::random::<u32>() % 512) / 1024.0)
}

#[cfg(test)]
mod tests {
    use near_crypto::{KeyType, PublicKey, Signature};
    use near_primitives::transaction::{Transaction, TransactionV0};

    use super::*;

    const BASE: Duration = Duration::from_millis(5_000);
    const CAP: Duration = Duration::from_millis(60_000);

    fn flight() -> InFlight {
        let tx = Transaction::V0(TransactionV0 {
            signer_id: "treasury.devnet".parse().unwrap(),
            public_key: PublicKey::empty(KeyType::ED25519),
            nonce: 7,
            receiver_id: "token.devnet".parse().unwrap(),
            block_hash: CryptoHash::default(),
            actions: vec![],
        });
        InFlight::new(
            SignedTransaction::new(Signature::empty(KeyType::ED25519), tx),
            Known::Signed,
        )
    }

    #[test]
    fn what_is_known_only_moves_forward() {
        let mut f = flight();
        assert!(f.advance(Known::Submitted));
        assert!(f.advance(Known::Included));
        // A late "pending" answer or an accepted re-broadcast does not undo the inclusion.
        assert!(!f.advance(Known::Submitted));
        assert!(f.included());
        f.asking = Asking::Sending;
        f.answered(Asking::LookingUp);
        assert_eq!(
            f.asking,
            Asking::Sending,
            "another call's answer frees nothing"
        );
        f.answered(Asking::Sending);
        assert_eq!(f.asking, Asking::Nothing);
    }

    #[test]
    fn backoff_doubles_per_doubt_with_bounded_jitter_up_to_the_cap() {
        let mut f = flight();
        assert_eq!(f.backoff(BASE, CAP), BASE, "no doubt: no jitter");
        for (doubts, floor) in [(1, 2 * BASE), (3, 8 * BASE), (10, CAP), (40, CAP)] {
            f.doubts = doubts;
            for _ in 0..100 {
                let d = f.backoff(BASE, CAP);
                assert!(
                    d >= floor && d <= floor.mul_f64(1.25),
                    "{doubts} doubts: {d:?}"
                );
            }
        }
    }

    #[test]
    fn congestion_pause_doubles_up_to_the_cap_with_at_most_half_jitter() {
        for (n, floor) in [
            (1, Duration::from_millis(500)),
            (2, Duration::from_secs(1)),
            (4, Duration::from_secs(4)),
            (30, CAP),
        ] {
            for _ in 0..100 {
                let d = congestion_pause(n, CAP);
                assert!(d >= floor && d <= floor.mul_f64(1.5), "streak {n}: {d:?}");
            }
        }
    }

    // The lane's clocks are tokio's, so the re-broadcast and proof back-offs are checked on paused time.
    #[tokio::test(start_paused = true)]
    async fn a_transaction_in_doubt_is_resent_only_after_its_backoff() {
        let mut f = flight();
        assert!(f.resend_due(BASE, CAP), "never sent: due at once");
        f.last_sent = Some(Instant::now());
        tokio::time::advance(BASE - Duration::from_millis(1)).await;
        assert!(!f.resend_due(BASE, CAP));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(f.resend_due(BASE, CAP));

        // Two doubts: 4 × base, plus up to 25 % jitter.
        f.doubts = 2;
        f.last_sent = Some(Instant::now());
        tokio::time::advance(4 * BASE - Duration::from_millis(1)).await;
        assert!(!f.resend_due(BASE, CAP));
        tokio::time::advance(BASE + Duration::from_millis(2)).await;
        assert!(f.resend_due(BASE, CAP));
    }

    #[tokio::test(start_paused = true)]
    async fn a_death_proof_waits_for_doubt_or_lateness_and_its_own_backoff() {
        let mut f = flight();
        assert!(
            !f.proof_due(false, Instant::now()),
            "neither in doubt nor late"
        );
        assert!(f.proof_due(true, Instant::now()));
        f.doubts = 1;
        f.proof = Proof::Gathering;
        assert!(!f.proof_due(true, Instant::now()), "one at a time");
        f.proof = Proof::Idle {
            next: Some(Instant::now() + BASE),
        };
        assert!(!f.proof_due(false, Instant::now()));
        tokio::time::advance(BASE).await;
        assert!(f.proof_due(false, Instant::now()));
        f.advance(Known::Included);
        assert!(
            !f.proof_due(true, Instant::now()),
            "an included transaction is never proven dead"
        );
    }
}
