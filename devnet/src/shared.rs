//! The state every part of a running devnet shares — the chain and its faults behind mutexes, the head and
//! stop signals, the configuration and the known keys — and the clock. The producer, the RPC and neardata
//! handlers, the HTTP server and the load generator take an `Arc<Shared>`; [`crate::node`] builds it and
//! starts them, so this module depends on none of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use near_primitives::types::AccountId;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::chain::Chain;
use crate::config::DevnetConfig;
use crate::faults::FaultState;
use crate::genesis::KnownKey;

/// State shared by the producer, the HTTP handlers and the handle.
pub(crate) struct Shared {
    pub(crate) chain: Mutex<Chain>,
    pub(crate) faults: Mutex<FaultState>,
    /// Height of the head; every new block sends.
    pub(crate) head: watch::Sender<u64>,
    /// Becomes true on shutdown.
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) cfg: DevnetConfig,
    pub(crate) started: Instant,
    pub(crate) keys: std::collections::BTreeMap<AccountId, Vec<KnownKey>>,
    pub(crate) users: Vec<AccountId>,
    pub(crate) treasury: AccountId,
    pub(crate) token: AccountId,
    /// Load generator rate, claims per second, as `f64` bits (changed through the handle).
    pub(crate) load_rate: AtomicU64,
}

impl Shared {
    /// Claims per second the load generator currently sends.
    pub(crate) fn load_rate(&self) -> f64 {
        f64::from_bits(self.load_rate.load(Ordering::Relaxed))
    }
}

/// Wall-clock time in nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
