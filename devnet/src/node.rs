//! The running node: the chain behind a mutex, the block producer task, the HTTP server and the
//! optional load generator, plus the handle tests and `payouts devnet` hold.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use near_crypto::{InMemorySigner, Signer};
use near_primitives::types::AccountId;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::chain::{AppliedFtTransfer, Chain, ChainParams, RpcFront};
use crate::config::{DevnetConfig, Faults, InjectedError};
use crate::error::DevnetError;
use crate::faults::FaultState;
use crate::fees::Fees;
use crate::genesis::Genesis;
use crate::shared::now_ns;
use crate::shared::Shared;

/// Entry point: `Devnet::start(cfg)`.
pub struct Devnet;

impl Devnet {
    /// A devnet for in-process tests and benchmarks: [`DevnetConfig::for_tests`] changed by `tune`, with its key
    /// files in a fresh temporary directory. The directory is removed when the returned guard drops, so keep it
    /// as long as the devnet; callers may put files of their own in it.
    pub async fn start_for_tests(
        tune: impl FnOnce(&mut DevnetConfig),
    ) -> Result<(DevnetHandle, tempfile::TempDir), DevnetError> {
        let keys = tempfile::tempdir().map_err(|source| DevnetError::KeyDir {
            path: std::env::temp_dir(),
            source,
        })?;
        let mut cfg = DevnetConfig::for_tests();
        cfg.key_dir = Some(keys.path().to_path_buf());
        tune(&mut cfg);
        Ok((Self::start(cfg).await?, keys))
    }

    /// Builds genesis, writes key files, binds the port and starts producing blocks.
    pub async fn start(cfg: DevnetConfig) -> Result<DevnetHandle, DevnetError> {
        let mut genesis = match &cfg.genesis {
            Some(path) => Genesis::from_file(path)?,
            None => Genesis::default(),
        };
        for (token, gas) in &cfg.ft_transfer_gas {
            let t = std::iter::once(&mut genesis.token)
                .chain(genesis.tokens.iter_mut())
                .find(|t| t.account_id.as_str() == token)
                .ok_or_else(|| {
                    DevnetError::GenesisInvalid(format!(
                        "devnet.ft_transfer_gas: `{token}` is not a token of the genesis"
                    ))
                })?;
            t.ft_transfer_gas = *gas;
        }
        if let (Some(n), Some(users)) = (cfg.users, genesis.users.as_mut()) {
            users.count = n;
        }
        let built = genesis.build()?;
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| DevnetError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| DevnetError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let key_dir = cfg.key_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "payouts-devnet-{}-{}",
                std::process::id(),
                addr.port()
            ))
        });
        let treasury_key_files =
            crate::keyfiles::write_key_files(&key_dir, &built, &genesis.treasury)?;
        let params = ChainParams {
            chain_id: genesis.chain_id.clone(),
            genesis_height: genesis.genesis_height,
            gas_limit: cfg.effective_gas_limit(),
            min_gas_price: genesis.min_gas_price.0,
            max_gas_price: genesis.max_gas_price.0,
            validity_period: cfg.validity_period,
            fees: cfg.congestion.apply(Fees::new(
                genesis
                    .gas_price
                    .0
                    .clamp(genesis.min_gas_price.0, genesis.max_gas_price.0),
                cfg.max_tx_gas,
            )),
        };
        let mut state = built.state;
        state.set_history_blocks(cfg.state_history_blocks);
        let mut chain = Chain::new(params, state, now_ns(), cfg.faults.seed);
        chain.set_drop_share(cfg.faults.drop_tx_share);
        let head_height = chain.head().height;
        let mut front = RpcFront::new(
            cfg.nodes,
            cfg.max_node_lag_blocks,
            head_height,
            cfg.faults.seed,
        );
        front.set_faults(cfg.faults.clone());
        chain.set_front(front);
        let shared = Arc::new(Shared {
            chain: Mutex::new(chain),
            faults: Mutex::new(FaultState::new(cfg.faults.clone())),
            head: watch::channel(head_height).0,
            stop: watch::channel(false).0,
            cfg: cfg.clone(),
            started: Instant::now(),
            keys: built.keys,
            users: built.users,
            treasury: genesis.treasury.clone(),
            token: genesis.token.account_id.clone(),
            load_rate: AtomicU64::new(cfg.load.claims_per_second.max(0.0).to_bits()),
        });
        let mut tasks = Vec::new();
        let app = crate::http::router(shared.clone());
        let mut stop_rx = shared.stop.subscribe();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            };
            if let Err(err) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(%err, "devnet http server failed");
            }
        }));
        tasks.push(tokio::spawn(crate::producer::run(shared.clone())));
        // Always running (idle at rate 0) so `set_load_rate` can start it later.
        tasks.push(tokio::spawn(crate::load::run(shared.clone())));
        tracing::info!(%addr, height = head_height, "devnet started");
        Ok(DevnetHandle {
            shared,
            addr,
            key_dir,
            treasury_key_files,
            tasks,
        })
    }
}

/// A running devnet. Dropping it without [`DevnetHandle::shutdown`] leaves the tasks running
/// until the runtime stops.
pub struct DevnetHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    key_dir: PathBuf,
    treasury_key_files: Vec<PathBuf>,
    tasks: Vec<JoinHandle<()>>,
}

/// Gas of one produced block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockGas {
    /// Height.
    pub height: u64,
    /// Gas burnt.
    pub used: u64,
    /// Compute spent (what the limit bounds).
    pub compute: u64,
    /// Limit in force (`None`: lifted); the compute limit too.
    pub limit: Option<u64>,
    /// Gas price of the block, yoctoNEAR per gas.
    pub gas_price: u128,
    /// The chunk's congestion info.
    pub congestion: crate::chain::Congestion,
    /// Whether the block holds a chunk.
    pub has_chunk: bool,
    /// Compute used when its last receipt was admitted (below `limit`).
    pub last_admitted_at: Option<u64>,
    /// The block's timestamp, nanoseconds since the epoch.
    pub timestamp_nanos: u64,
}

impl DevnetHandle {
    /// `http://127.0.0.1:PORT`: the JSON-RPC URL and the neardata base URL.
    pub fn rpc_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Directory holding the key files.
    pub fn key_dir(&self) -> &std::path::Path {
        &self.key_dir
    }

    /// Key file of the treasury's first key (`treasury.devnet-0.json` by default).
    pub fn treasury_key_file(&self) -> PathBuf {
        self.treasury_key_files
            .first()
            .cloned()
            .unwrap_or_else(|| self.key_dir.join("missing.json"))
    }

    /// Key files of every treasury key.
    pub fn treasury_key_files(&self) -> &[PathBuf] {
        &self.treasury_key_files
    }

    /// The treasury account.
    pub fn treasury(&self) -> &AccountId {
        &self.shared.treasury
    }

    /// The token contract account.
    pub fn token(&self) -> &AccountId {
        &self.shared.token
    }

    /// Generated user accounts, `user-N.devnet` at index N.
    pub fn users(&self) -> &[AccountId] {
        &self.shared.users
    }

    /// A signer for key `index` of an account whose keys the genesis derived.
    pub fn signer(&self, account: &AccountId, index: usize) -> Option<Signer> {
        let key = self.shared.keys.get(account)?.get(index)?;
        Some(InMemorySigner::from_secret_key(
            account.clone(),
            key.secret_key.clone(),
        ))
    }

    /// Signers for every derived key of the treasury.
    pub fn treasury_signers(&self) -> Vec<Signer> {
        let keys = self
            .shared
            .keys
            .get(&self.shared.treasury)
            .map_or(&[][..], |k| k.as_slice());
        keys.iter()
            .map(|k| InMemorySigner::from_secret_key(k.account_id.clone(), k.secret_key.clone()))
            .collect()
    }

    /// Replaces the fault knobs (takes effect for the next call / block).
    pub fn set_faults(&self, faults: Faults) {
        {
            let mut chain = self.shared.chain.lock();
            chain.set_drop_share(faults.drop_tx_share);
            chain.front_mut().set_faults(faults.clone());
        }
        self.shared.faults.lock().set(faults);
    }

    /// Number of simulated nodes behind the RPC URL.
    pub fn nodes(&self) -> usize {
        self.shared.chain.lock().front_mut().len()
    }

    /// Makes node `node` lag exactly `blocks` behind the producer (`None`: back to drawn lags,
    /// up to `max_node_lag_blocks`).
    pub fn set_node_lag(&self, node: usize, blocks: Option<u64>) {
        self.shared.chain.lock().front_mut().set_lag(node, blocks);
    }

    /// Answers the next `count` submissions of transaction `hash` (through any node, any
    /// method) with `error`, without processing them.
    pub fn reject_next_submissions(
        &self,
        hash: near_primitives::hash::CryptoHash,
        count: u32,
        error: InjectedError,
    ) {
        self.shared
            .chain
            .lock()
            .front_mut()
            .script(hash, count, error);
    }

    /// Holds the next copy of `hash` a node receives in that node's pool for `blocks` blocks
    /// before forwarding it (a copy that lands late).
    pub fn hold_tx(&self, hash: near_primitives::hash::CryptoHash, blocks: u64) {
        self.shared.chain.lock().front_mut().hold(hash, blocks);
    }

    /// Whether transaction `hash` is included in a block.
    pub fn is_on_chain(&self, hash: &near_primitives::hash::CryptoHash) -> bool {
        let chain = self.shared.chain.lock();
        chain.is_on_chain(hash, chain.head().height)
    }

    /// Changes the load generator's rate, claims per second (0 pauses it). Benchmarks pause it once
    /// their chain is built, so signing claims does not compete with what they measure.
    pub fn set_load_rate(&self, claims_per_second: f64) {
        let rate = if claims_per_second.is_finite() {
            claims_per_second.max(0.0)
        } else {
            0.0
        };
        self.shared
            .load_rate
            .store(rate.to_bits(), Ordering::Relaxed);
    }

    /// The load generator's rate in force, claims per second.
    pub fn load_rate(&self) -> f64 {
        self.shared.load_rate()
    }

    /// The fault knobs in force.
    pub fn faults(&self) -> Faults {
        self.shared.faults.lock().faults().clone()
    }

    /// Height of the head block.
    pub fn head_height(&self) -> u64 {
        *self.shared.head.borrow()
    }

    /// Height of the latest final block.
    pub fn final_height(&self) -> u64 {
        self.shared.chain.lock().final_height()
    }

    /// Balance of an account on the token contract `token` (`None`: not registered, or no such token).
    pub fn ft_balance_of(&self, token: &AccountId, account: &AccountId) -> Option<u128> {
        let chain = self.shared.chain.lock();
        chain.state().ft(token)?.balances.get(account).copied()
    }

    /// Token balance of an account on the genesis `[token]`; `None` when not registered.
    pub fn ft_balance(&self, account: &AccountId) -> Option<u128> {
        let chain = self.shared.chain.lock();
        chain
            .state()
            .ft(&self.shared.token)?
            .balances
            .get(account)
            .copied()
    }

    /// NEAR balance of an account, yoctoNEAR.
    pub fn near_balance(&self, account: &AccountId) -> Option<u128> {
        self.shared
            .chain
            .lock()
            .state()
            .account(account)
            .map(|a| a.amount)
    }

    /// Every successful `ft_transfer` applied so far, in order.
    pub fn ft_transfers(&self) -> Vec<AppliedFtTransfer> {
        self.shared.chain.lock().ft_transfers().to_vec()
    }

    /// The per-block gas limit in force (`None`: lifted).
    pub fn gas_limit(&self) -> Option<u64> {
        self.shared.chain.lock().params().gas_limit
    }

    /// Gas used and limit of every block so far.
    pub fn block_gas(&self) -> Vec<BlockGas> {
        let chain = self.shared.chain.lock();
        let genesis = chain.params().genesis_height;
        (genesis..=chain.head().height)
            .filter_map(|h| chain.block_at(h))
            .map(|b| BlockGas {
                height: b.height,
                used: b.gas_used,
                compute: b.compute_used,
                limit: b.gas_limit,
                gas_price: b.message.block.header.gas_price.as_yoctonear(),
                congestion: b.congestion,
                has_chunk: b.has_chunk,
                last_admitted_at: b.last_admitted_at,
                timestamp_nanos: b.message.block.header.timestamp_nanosec,
            })
            .collect()
    }

    /// Makes the next `blocks` blocks miss the shard's chunk (nothing included or executed; at
    /// 100 missed chunks in a row nodes answer new transactions with `ShardStuck`).
    pub fn miss_chunks(&self, blocks: u64) {
        self.shared.chain.lock().miss_chunks(blocks);
    }

    /// Transactions in the pool and receipts waiting for execution.
    pub fn backlog(&self) -> (usize, usize) {
        let mut chain = self.shared.chain.lock();
        let pooled = chain.pool_len() + chain.front_mut().pooled();
        (pooled, chain.pending_receipts())
    }

    /// Waits until the head reaches `height` or `timeout` passes; returns whether it did.
    pub async fn wait_for_height(&self, height: u64, timeout: Duration) -> bool {
        let mut rx = self.shared.head.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|h| *h >= height))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops the server, the producer and the load generator, and waits for them.
    pub async fn shutdown(self) {
        self.shared.stop.send_replace(true);
        for task in self.tasks {
            if let Err(err) = task.await {
                tracing::warn!(%err, "devnet task ended abnormally");
            }
        }
    }
}

/// `payouts devnet`: starts the devnet, logs its URLs and key files, runs until `shutdown`.
pub async fn run(cfg: DevnetConfig, shutdown: impl Future<Output = ()>) -> Result<(), DevnetError> {
    let handle = Devnet::start(cfg).await?;
    tracing::info!(rpc = %handle.rpc_url(), neardata = %handle.rpc_url(), "devnet listening");
    tracing::info!(key_dir = %handle.key_dir().display(), "devnet key files");
    for file in handle.treasury_key_files() {
        tracing::info!(file = %file.display(), "treasury key file");
    }
    shutdown.await;
    tracing::info!("devnet shutting down");
    handle.shutdown().await;
    Ok(())
}
