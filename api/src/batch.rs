//! Group commit for `POST /send-ft`: concurrent requests' claim rows are inserted together, one statement and
//! one commit per group, by a few workers. Under light load a group is one row and nothing waits (there is no
//! linger timer); under heavy load the database does a fraction of the per-statement and per-commit work.
//! A group whose statement fails is retried row by row, so one bad row never fails its neighbours.

use std::sync::Arc;

use payouts_store::api_queries::insert_manual_claims;
use payouts_store::claims::{insert_manual_claim, Claim, NewClaim};
use payouts_store::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::error::ApiError;

type Reply = oneshot::Sender<Result<(Claim, bool), ApiError>>;

/// Hands claim rows to the insert workers.
pub(crate) struct Batcher {
    tx: mpsc::Sender<(NewClaim, Reply)>,
}

impl Batcher {
    /// Starts `workers` workers inserting up to `max_batch` rows per statement. Must run inside a Tokio runtime.
    /// The workers stop when the batcher is dropped.
    pub(crate) fn start(pool: PgPool, workers: usize, max_batch: usize) -> Self {
        let (tx, rx) = mpsc::channel::<(NewClaim, Reply)>(max_batch * workers * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers.max(1) {
            tokio::spawn(worker(pool.clone(), rx.clone(), max_batch.max(1)));
        }
        Self { tx }
    }

    /// Inserts `row` (or finds the claim with its idempotency key); the flag says whether it is new.
    pub(crate) async fn insert(&self, row: NewClaim) -> Result<(Claim, bool), ApiError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((row, reply))
            .await
            .map_err(|_| ApiError::internal(&"claim insert workers stopped"))?;
        answer
            .await
            .map_err(|_| ApiError::internal(&"claim insert worker dropped the request"))?
    }
}

async fn worker(pool: PgPool, rx: Arc<Mutex<mpsc::Receiver<(NewClaim, Reply)>>>, max_batch: usize) {
    let mut batch: Vec<(NewClaim, Reply)> = Vec::with_capacity(max_batch);
    loop {
        {
            // One worker gathers at a time: it takes what is queued now, up to max_batch, and lets the next
            // worker gather while it writes.
            let mut rx = rx.lock().await;
            if rx.recv_many(&mut batch, max_batch).await == 0 {
                return;
            }
        }
        // Requests whose caller went away (timeout, disconnect) are still inserted: a retry with the same
        // Idempotency-Key then finds the claim.
        let rows: Vec<NewClaim> = batch.iter().map(|(r, _)| r.clone()).collect();
        let result = match payouts_store::get(&pool).await {
            Ok(mut conn) => match insert_manual_claims(&mut conn, &rows).await {
                Ok(done) => Ok(done),
                Err(e) => {
                    if rows.len() > 1 {
                        tracing::warn!(error = %e, rows = rows.len(), "group insert failed; inserting row by row");
                    }
                    let mut each = Vec::with_capacity(rows.len());
                    for row in &rows {
                        each.push(
                            insert_manual_claim(&mut conn, row)
                                .await
                                .map_err(ApiError::from),
                        );
                    }
                    Err(each)
                }
            },
            Err(e) => {
                let e = ApiError::from(e);
                Err(rows.iter().map(|_| Err(e.clone())).collect())
            }
        };
        match result {
            Ok(done) => {
                for ((_, reply), r) in batch.drain(..).zip(done) {
                    let _ = reply.send(Ok(r));
                }
            }
            Err(each) => {
                for ((_, reply), r) in batch.drain(..).zip(each) {
                    let _ = reply.send(r);
                }
            }
        }
    }
}
