//! What the answers about a transaction in flight do to it: an accepted submission marks it `submitted`; a
//! rejection (never a verdict) adds a doubt, asks the node again and, for `ShardCongested`/`ShardStuck`,
//! pauses the lane's new batches; a `tx` lookup that finds an outcome settles it in the store; a death proof
//! from the indexed chain ([`crate::death`]) buries it and hands its claims back — only then does it leave
//! the lane without being settled.

use std::time::Duration;

use near_primitives::errors::InvalidTxError;
use payouts_store::reconcile::{settle, Settlement};
use payouts_store::transactions::{bury, get_tx, mark_submitted};
use payouts_store::TxStatus;
use tokio::time::Instant;

use crate::chain::{Lookup, Sent};
use crate::death::Verdict;
use crate::metrics::add;
use crate::prepare::PrepareError;

use super::flight::{congestion_pause, Asking, Event, Known, Proof};
use super::Lane;

impl Lane {
    pub(super) async fn handle(&mut self, ev: Event) {
        if let Err(e) = self.try_handle(ev).await {
            self.shared.report_error(&format!("lane {}: {e}", self.pk));
        }
    }

    async fn try_handle(&mut self, ev: Event) -> Result<(), PrepareError> {
        let metrics = self.shared.metrics.clone();
        match ev {
            Event::Sent(hash, started, result) => {
                let Some((_, f)) = self.find(&hash) else {
                    return Ok(());
                };
                f.answered(Asking::Sending);
                match result {
                    Ok(Sent::Accepted) => {
                        metrics.broadcast_latency.observe(started.elapsed());
                        add(&metrics.broadcasts, 1);
                        let was_congested = self.congestion_streak > 0;
                        if was_congested {
                            self.congestion_streak = 0;
                            self.congested_until = None;
                            self.shared.set_congested(&self.pk, None);
                        }
                        let Some((_, f)) = self.find(&hash) else {
                            return Ok(());
                        };
                        if f.advance(Known::Submitted) {
                            let mut conn = self.shared.conn().await?;
                            mark_submitted(&mut conn, &hash.to_string()).await?;
                        }
                    }
                    Ok(Sent::Rejected(err)) => {
                        // A reason to look again, never a verdict: the first copy may sit in another node's pool,
                        // and InvalidNonce on a resend usually means it landed.
                        add(&metrics.rejections, 1);
                        let nonce_clash = matches!(err, InvalidTxError::InvalidNonce { .. });
                        let congested = matches!(
                            err,
                            InvalidTxError::ShardCongested { .. }
                                | InvalidTxError::ShardStuck { .. }
                        );
                        f.doubts = f.doubts.saturating_add(1);
                        if let Proof::Idle { next } = &mut f.proof {
                            *next = None;
                        }
                        tracing::info!(tx = %hash, error = %err, doubts = f.doubts, "submission rejected; will look again");
                        f.asking = Asking::LookingUp;
                        f.last_lookup = Some(Instant::now());
                        self.look(hash);
                        if congested {
                            // Slow down: no new batches for a while, the same bytes re-broadcast later.
                            add(&metrics.congestion_rejections, 1);
                            self.congestion_streak = self.congestion_streak.saturating_add(1);
                            let cap =
                                Duration::from_millis(self.shared.cfg.max_rebroadcast_backoff_ms);
                            let pause = congestion_pause(self.congestion_streak, cap);
                            let until = Instant::now() + pause;
                            self.congested_until = Some(until);
                            self.shared
                                .set_congested(&self.pk, Some((err.to_string(), until.into_std())));
                            tracing::warn!(key = %self.pk, error = %err, pause_ms = pause.as_millis() as u64, streak = self.congestion_streak, "shard congested: lane backs off");
                        }
                        if nonce_clash {
                            self.resync().await;
                        }
                    }
                    Err(e) => {
                        add(&metrics.rpc_errors, 1);
                        tracing::debug!(tx = %hash, error = %e, "no answer to a broadcast; will re-broadcast");
                    }
                }
            }
            Event::Looked(hash, result) => {
                let Some((_, f)) = self.find(&hash) else {
                    return Ok(());
                };
                f.answered(Asking::LookingUp);
                match result {
                    Err(e) => {
                        add(&metrics.rpc_errors, 1);
                        tracing::debug!(tx = %hash, error = %e, "lookup failed");
                    }
                    Ok(Lookup::Unknown) => {
                        // Not in a block this node has seen: it may still sit in a pool. Send it again (with
                        // back-off) and let the indexed chain decide.
                        f.doubts = f.doubts.saturating_add(1);
                        f.last_sent = None;
                    }
                    Ok(Lookup::Pending) => {
                        f.advance(Known::Submitted);
                    }
                    Ok(Lookup::Done(outcome)) => {
                        let mut conn = self.shared.conn().await?;
                        if let Some(stored) = get_tx(&mut conn, &hash.to_string()).await? {
                            let how = match &outcome {
                                Ok(()) => Settlement::Success,
                                Err(msg) => Settlement::Failure(msg),
                            };
                            let done = settle(&mut conn, &stored, how).await?;
                            tracing::info!(tx = %hash, ?done, "settled from a tx lookup (the stream had not)");
                        }
                    }
                }
            }
            Event::Proved(hash, verdict) => {
                let again = Duration::from_millis(self.shared.cfg.rebroadcast_after_ms);
                let Some((nonce, f)) = self.find(&hash) else {
                    return Ok(());
                };
                match verdict {
                    Verdict::NotYet(why) => {
                        f.proof = Proof::Idle {
                            next: Some(Instant::now() + again),
                        };
                        tracing::debug!(tx = %hash, %why, "not proven dead; re-broadcasting the same bytes");
                    }
                    Verdict::Dead(reason) => {
                        let mut conn = self.shared.conn().await?;
                        // `bury` moves it only while the store still shows it not included (see death.rs).
                        let handed_back = bury(&mut conn, &hash.to_string(), &reason).await?;
                        // 0 also when bury refused: the stream saw it included between the proof and
                        // the burial (its nonce is used at the indexed block because it landed there).
                        let buried = handed_back > 0
                            || get_tx(&mut conn, &hash.to_string())
                                .await?
                                .is_some_and(|t| t.status == TxStatus::Dropped);
                        drop(conn);
                        if buried {
                            self.flight.remove(&nonce);
                            add(&metrics.txs_dead, 1);
                            tracing::info!(tx = %hash, %reason, handed_back, "dead transaction (proven by the indexed chain): claims handed back");
                        } else if let Some((_, f)) = self.find(&hash) {
                            // Not dead: it stays in flight until the store shows it settled.
                            f.proof = Proof::Idle {
                                next: Some(Instant::now() + again),
                            };
                            tracing::info!(tx = %hash, %reason, "not buried: the store shows it included (the proof raced the stream)");
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
