//! One accepted connection as the server's registry (connection cap, idle eviction) and the rate-limit gate
//! both see it: the server counts requests in flight on it, the gate marks requests it only holds back
//! before a 429 ([`Parked`]), so a connection whose requests are all held counts as idle for the cap.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// One open connection, as the registry sees it.
pub(crate) struct Conn {
    /// Requests being answered now.
    pub(crate) in_flight: AtomicU32,
    /// Of those, requests only held back before a 429 (see [`crate::guard`]): no work is lost when the
    /// connection is dropped.
    pub(crate) parked: AtomicU32,
    /// Milliseconds since the registry's epoch of the last request's end (or of the accept).
    pub(crate) last_active: AtomicU64,
    /// Requests answered so far.
    pub(crate) served: AtomicU64,
    /// Cancelled to drop the connection at once (only ever while no request is in flight).
    pub(crate) evict: CancellationToken,
}

impl Conn {
    /// No request in flight but ones held back before a 429.
    pub(crate) fn evictable(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) <= self.parked.load(Ordering::Acquire)
    }
}

/// The connection a request came on (a request extension), for [`crate::guard`].
#[derive(Clone)]
pub(crate) struct ConnHandle(pub(crate) Arc<Conn>);

/// Marks a request as only held back on its connection while alive (also when the request is dropped).
pub(crate) struct Parked(Option<ConnHandle>);

impl Parked {
    pub(crate) fn new(conn: Option<ConnHandle>) -> Self {
        if let Some(c) = &conn {
            c.0.parked.fetch_add(1, Ordering::AcqRel);
        }
        Self(conn)
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.0.parked.fetch_sub(1, Ordering::AcqRel);
        }
    }
}
