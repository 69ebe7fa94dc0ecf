//! A whole payout system in one test: the devnet, a real PostgreSQL, the indexer (real lake stream) reconciling
//! outcomes, and distributor instances, plus the checks every payout test makes: exactly once, exact balances.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use near_primitives::types::AccountId;
use payouts_devnet::{Devnet, DevnetConfig, DevnetHandle};
use payouts_distributor::{Distributor, DistributorConfig, DistributorMetrics, RpcEndpointConfig};
use payouts_indexer::{Indexer, IndexerConfig, IndexerMetrics};
use payouts_store::claims::{count_by_status, get_claim, insert_claims, NewClaim};
use payouts_store::memo::claim_ids_from_memo;
use payouts_store::testdb::TestDb;
use payouts_store::{ClaimId, ClaimStatus, PgPool, Yocto};
use tokio_util::sync::CancellationToken;

pub struct World {
    pub devnet: DevnetHandle,
    pub db: TestDb,
    pub pool: PgPool,
    indexer_stop: CancellationToken,
    _keys: tempfile::TempDir,
}

pub struct Running {
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), payouts_distributor::DistributorError>>,
    pub metrics: Arc<DistributorMetrics>,
    pub owner: String,
}

impl World {
    pub async fn start(tune: impl FnOnce(&mut DevnetConfig)) -> World {
        let (devnet, keys) = Devnet::start_for_tests(tune).await.unwrap();
        let db = TestDb::new().await;
        let pool = db.pool().await;
        let icfg = IndexerConfig {
            start_block_height: Some(1),
            ..IndexerConfig::fastnear(devnet.rpc_url())
        };
        let indexer =
            Indexer::new(pool.clone(), icfg, Arc::new(IndexerMetrics::default())).unwrap();
        let indexer_stop = CancellationToken::new();
        tokio::spawn(indexer.run(indexer_stop.clone()));
        World {
            devnet,
            db,
            pool,
            indexer_stop,
            _keys: keys,
        }
    }

    /// A distributor configuration for tests: fast polls and timeouts, keys `keys` of the devnet treasury.
    pub fn config(&self, keys: std::ops::Range<usize>) -> DistributorConfig {
        DistributorConfig {
            key_files: self.devnet.treasury_key_files()[keys].to_vec(),
            poll_interval_ms: 20,
            max_batch_wait_ms: 200,
            lease_ttl_ms: 3_000,
            rebroadcast_after_ms: 1_000,
            outcome_timeout_ms: 8_000,
            rpc_timeout_ms: 3_000,
            shutdown_grace_ms: 5_000,
            ..DistributorConfig::default()
        }
    }

    pub async fn spawn(&self, cfg: DistributorConfig) -> Running {
        let endpoint = RpcEndpointConfig::new(self.devnet.rpc_url());
        self.spawn_with_endpoints(cfg, &[endpoint]).await
    }

    /// [`World::spawn`] over the RPC endpoint pool `endpoints`.
    pub async fn spawn_with_endpoints(
        &self,
        cfg: DistributorConfig,
        endpoints: &[RpcEndpointConfig],
    ) -> Running {
        let metrics = Arc::new(DistributorMetrics::default());
        let d = Distributor::with_endpoints(self.pool.clone(), cfg, endpoints, metrics.clone())
            .await
            .unwrap();
        let owner = d.owner().to_string();
        let stop = CancellationToken::new();
        let task = tokio::spawn(d.run(stop.clone()));
        Running {
            stop,
            task,
            metrics,
            owner,
        }
    }

    /// Inserts manual claims (receiver, amount) of token.devnet; returns their ids in order.
    pub async fn claims(&self, tag: &str, items: &[(String, u128)]) -> Vec<ClaimId> {
        self.claims_of("token.devnet", tag, items).await
    }

    /// Inserts manual claims (receiver, amount) of `token`; returns their ids in order.
    pub async fn claims_of(
        &self,
        token: &str,
        tag: &str,
        items: &[(String, u128)],
    ) -> Vec<ClaimId> {
        let rows: Vec<NewClaim> = items
            .iter()
            .enumerate()
            .map(|(i, (r, a))| {
                NewClaim::manual(&format!("{tag}-{i}"), "d", token, r, Yocto(*a), None)
            })
            .collect();
        let mut conn = payouts_store::get(&self.pool).await.unwrap();
        for chunk in rows.chunks(1000) {
            insert_claims(&mut conn, chunk).await.unwrap();
        }
        let mut ids = Vec::new();
        for i in 0..items.len() {
            let key = format!("{tag}-{i}");
            ids.push(claim_by_key(&self.pool, &key).await);
        }
        ids
    }

    pub fn balance_of(&self, token: &str, account: &str) -> u128 {
        let token: AccountId = token.parse().unwrap();
        let id: AccountId = account.parse().unwrap();
        self.devnet.ft_balance_of(&token, &id).unwrap_or(0)
    }

    pub fn balance(&self, account: &str) -> u128 {
        let id: AccountId = account.parse().unwrap();
        self.devnet.ft_balance(&id).unwrap_or(0)
    }

    /// Waits until no claim is pending or submitted (deadline), returning the counts per status.
    pub async fn wait_settled(&self, within: Duration) -> HashMap<ClaimStatus, i64> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut conn = payouts_store::get(&self.pool).await.unwrap();
            let counts: HashMap<ClaimStatus, i64> = count_by_status(&mut conn)
                .await
                .unwrap()
                .into_iter()
                .collect();
            let open = counts.get(&ClaimStatus::Pending).copied().unwrap_or(0)
                + counts.get(&ClaimStatus::Submitted).copied().unwrap_or(0);
            if open == 0 {
                return counts;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "claims still open after {within:?}: {counts:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Transfers applied on chain per claim id (from the memo): receiver and amount (for a merged transfer,
    /// the amount of the whole transfer).
    pub fn transfers_per_claim(&self) -> HashMap<ClaimId, Vec<(String, u128)>> {
        let mut out: HashMap<ClaimId, Vec<(String, u128)>> = HashMap::new();
        for (ids, receiver, amount) in self.memo_transfers() {
            for id in ids {
                out.entry(id).or_default().push((receiver.clone(), amount));
            }
        }
        out
    }

    /// Every transfer on chain whose memo names claims: (claim ids, receiver, amount).
    pub fn memo_transfers(&self) -> Vec<(Vec<ClaimId>, String, u128)> {
        self.devnet
            .ft_transfers()
            .into_iter()
            .filter_map(|t| {
                let ids = t.event.memo.as_deref().and_then(claim_ids_from_memo)?;
                Some((ids, t.event.receiver.to_string(), t.event.amount))
            })
            .collect()
    }

    /// Every confirmed claim was paid exactly once, with its amount to its receiver (a merged transfer: the
    /// sum of the claims it names); nothing else was paid.
    pub async fn assert_exactly_once(&self, ids: &[ClaimId]) {
        let mut paid: HashMap<ClaimId, Vec<(String, u128, Vec<ClaimId>)>> = HashMap::new();
        for (named, receiver, amount) in self.memo_transfers() {
            for id in &named {
                paid.entry(*id)
                    .or_default()
                    .push((receiver.clone(), amount, named.clone()));
            }
        }
        let mut conn = payouts_store::get(&self.pool).await.unwrap();
        for id in ids {
            let c = get_claim(&mut conn, *id).await.unwrap().unwrap();
            let transfers = paid.get(id).cloned().unwrap_or_default();
            match c.status {
                ClaimStatus::Confirmed => {
                    assert_eq!(transfers.len(), 1, "claim {id:?} not paid exactly once");
                    let (receiver, amount, named) = &transfers[0];
                    assert_eq!(receiver, &c.receiver_id, "claim {id:?} paid to another");
                    let mut sum = 0u128;
                    for n in named {
                        let other = get_claim(&mut conn, *n).await.unwrap().unwrap();
                        assert_eq!(other.receiver_id, c.receiver_id, "merged across receivers");
                        sum += other.amount.0;
                    }
                    assert_eq!(*amount, sum, "claim {id:?}: transfer amount is not the sum");
                }
                _ => assert!(
                    transfers.is_empty(),
                    "claim {id:?} ({:?}) was paid",
                    c.status
                ),
            }
        }
        let unknown: Vec<_> = paid.keys().filter(|k| !ids.contains(k)).collect();
        assert!(
            unknown.is_empty(),
            "transfers for unknown claims {unknown:?}"
        );
        // Our own payments, however they were settled, never look unexpected.
        let incidents = payouts_store::incidents::list_incidents(&mut conn, false, 10)
            .await
            .unwrap();
        assert!(incidents.is_empty(), "false incidents: {incidents:#?}");
    }

    pub async fn stop(self) {
        self.indexer_stop.cancel();
        self.devnet.shutdown().await;
    }
}

async fn claim_by_key(pool: &PgPool, key: &str) -> ClaimId {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use payouts_store::schema::claims;
    let mut conn = payouts_store::get(pool).await.unwrap();
    claims::table
        .filter(claims::idempotency_key.eq(key))
        .select(claims::id)
        .first(&mut conn)
        .await
        .unwrap()
}

/// Registered (even-numbered) devnet users.
pub fn registered_user(i: usize) -> String {
    format!("user-{}.devnet", 2 * (i % 500))
}

impl Running {
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}
