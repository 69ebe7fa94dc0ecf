//! Counters, gauges and latency histograms the distributor keeps (cheap atomics; read with
//! [`DistributorMetrics::snapshot`]), exposed through the binary's Prometheus registry by the
//! [`Collector`](payouts_near::prom::Collector) impl below.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets; a last `+Inf` bucket is implied.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// A copy of a [`Histogram`]: per-bucket counts (not cumulative; the last is `+Inf`) and the sum.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct HistogramSnapshot {
    /// Counts per bucket of [`LATENCY_BUCKETS`], then `+Inf`.
    pub counts: Vec<u64>,
    /// Sum of observations, seconds.
    pub sum_seconds: f64,
}

impl HistogramSnapshot {
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// A copy.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            // Display only: precision loss is fine.
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// Shared distributor metrics.
#[derive(Debug, Default)]
pub struct DistributorMetrics {
    /// The RPC endpoint pool, once the distributor has built it.
    rpc: std::sync::OnceLock<std::sync::Arc<crate::rpc::RpcPool>>,
    /// Batches signed and stored.
    pub batches: AtomicU64,
    /// Transfers in those batches.
    pub transfers: AtomicU64,
    /// Broadcast calls that the node accepted.
    pub broadcasts: AtomicU64,
    /// Re-broadcasts of stored bytes (timeouts, restarts).
    pub rebroadcasts: AtomicU64,
    /// Transactions the indexed chain proved dead (their claims handed back).
    pub txs_dead: AtomicU64,
    /// Submissions the node rejected (reasons to look again, never a verdict).
    pub rejections: AtomicU64,
    /// Lane resyncs after `InvalidNonce`.
    pub nonce_resyncs: AtomicU64,
    /// RPC calls that failed (timeouts, 5xx, transport).
    pub rpc_errors: AtomicU64,
    /// Claims failed before sending (zero amount, invalid receiver).
    pub unpayable: AtomicU64,
    /// Times a lane did not sign for a token because the treasury's balance of it could not be read.
    pub balance_unknown: AtomicU64,
    /// Keys leased now.
    pub keys_held: AtomicU64,
    /// Transactions in flight now (stored, not settled) on our lanes.
    pub in_flight: AtomicU64,
    /// 1 while paused by a guard.
    pub paused: AtomicU64,
    /// Submissions rejected with `ShardCongested` / `ShardStuck` (each slows its lane down).
    pub congestion_rejections: AtomicU64,
    /// Lanes backing off after congestion now.
    pub lanes_congested: AtomicU64,
    /// The latest gas price read (yocto per gas; 0 before the first read).
    pub gas_price: AtomicU128,
    /// Per token: the gas per transfer chosen and the batch size it gives.
    pub gas: std::sync::Mutex<Vec<crate::gas::TokenGas>>,
    /// Time of a broadcast call.
    pub broadcast_latency: Histogram,
    /// Time from storing a transaction to seeing it settled.
    pub settle_latency: Histogram,
}

/// A point-in-time copy of [`DistributorMetrics`].
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct DistributorSnapshot {
    /// See [`DistributorMetrics::batches`].
    pub batches: u64,
    /// See [`DistributorMetrics::transfers`].
    pub transfers: u64,
    /// See [`DistributorMetrics::broadcasts`].
    pub broadcasts: u64,
    /// See [`DistributorMetrics::rebroadcasts`].
    pub rebroadcasts: u64,
    /// See [`DistributorMetrics::txs_dead`].
    pub txs_dead: u64,
    /// See [`DistributorMetrics::rejections`].
    pub rejections: u64,
    /// See [`DistributorMetrics::nonce_resyncs`].
    pub nonce_resyncs: u64,
    /// See [`DistributorMetrics::rpc_errors`].
    pub rpc_errors: u64,
    /// See [`DistributorMetrics::unpayable`].
    pub unpayable: u64,
    /// See [`DistributorMetrics::balance_unknown`].
    pub balance_unknown: u64,
    /// See [`DistributorMetrics::keys_held`].
    pub keys_held: u64,
    /// See [`DistributorMetrics::in_flight`].
    pub in_flight: u64,
    /// See [`DistributorMetrics::paused`].
    pub paused: u64,
    /// See [`DistributorMetrics::congestion_rejections`].
    pub congestion_rejections: u64,
    /// See [`DistributorMetrics::lanes_congested`].
    pub lanes_congested: u64,
    /// See [`DistributorMetrics::gas_price`] (a decimal string: yocto units).
    pub gas_price: String,
    /// See [`DistributorMetrics::gas`].
    pub gas: Vec<crate::gas::TokenGas>,
    /// See [`DistributorMetrics::broadcast_latency`].
    pub broadcast_latency: HistogramSnapshot,
    /// See [`DistributorMetrics::settle_latency`].
    pub settle_latency: HistogramSnapshot,
    /// Every RPC endpoint's state ([`crate::rpc`]), in configuration order.
    pub rpc_endpoints: Vec<crate::rpc::EndpointSnapshot>,
}

impl DistributorMetrics {
    /// Shows `pool`'s endpoints in [`DistributorSnapshot::rpc_endpoints`] (the first pool set stays).
    pub fn set_rpc(&self, pool: std::sync::Arc<crate::rpc::RpcPool>) {
        let _ = self.rpc.set(pool);
    }

    /// A copy of every value.
    pub fn snapshot(&self) -> DistributorSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DistributorSnapshot {
            batches: get(&self.batches),
            transfers: get(&self.transfers),
            broadcasts: get(&self.broadcasts),
            rebroadcasts: get(&self.rebroadcasts),
            txs_dead: get(&self.txs_dead),
            rejections: get(&self.rejections),
            nonce_resyncs: get(&self.nonce_resyncs),
            rpc_errors: get(&self.rpc_errors),
            unpayable: get(&self.unpayable),
            balance_unknown: get(&self.balance_unknown),
            keys_held: get(&self.keys_held),
            in_flight: get(&self.in_flight),
            paused: get(&self.paused),
            congestion_rejections: get(&self.congestion_rejections),
            lanes_congested: get(&self.lanes_congested),
            gas_price: self.gas_price.get().to_string(),
            gas: self.gas.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            broadcast_latency: self.broadcast_latency.snapshot(),
            settle_latency: self.settle_latency.snapshot(),
            rpc_endpoints: self.rpc.get().map(|p| p.snapshot()).unwrap_or_default(),
        }
    }
}

/// A u128 gauge (yocto units) behind a mutex: written once a second, read by the metrics page.
#[derive(Debug, Default)]
pub struct AtomicU128(std::sync::Mutex<u128>);

impl AtomicU128 {
    /// The value.
    pub fn get(&self) -> u128 {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets it.
    pub fn set(&self, v: u128) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }
}

/// Adds `n` to a counter.
pub(crate) fn add(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

/// `/metrics` of a distributor running in the process: registered by the binary in the registry it owns.
impl payouts_near::prom::Collector for DistributorMetrics {
    fn encode(&self, mut enc: payouts_near::prom::DescriptorEncoder) -> std::fmt::Result {
        use payouts_near::prom::{counter, gauge, gauges, histogram, HistogramSeries};
        let s = self.snapshot();
        let e = &mut enc;
        let counters: [(&str, &str, u64); 11] = [
            ("payouts_distributor_batches_total", "Batches signed and stored.", s.batches),
            ("payouts_distributor_transfers_total", "Transfers in those batches.", s.transfers),
            ("payouts_distributor_broadcasts_total", "Broadcast calls the node accepted.", s.broadcasts),
            ("payouts_distributor_rebroadcasts_total", "Re-broadcasts of stored bytes.", s.rebroadcasts),
            (
                "payouts_distributor_txs_dead_total",
                "Transactions the indexed chain proved dead (claims handed back).",
                s.txs_dead,
            ),
            (
                "payouts_distributor_rejections_total",
                "Submissions the node rejected (reasons to look again, never a verdict).",
                s.rejections,
            ),
            ("payouts_distributor_nonce_resyncs_total", "Lane resyncs after InvalidNonce.", s.nonce_resyncs),
            ("payouts_distributor_rpc_errors_total", "RPC calls that failed.", s.rpc_errors),
            ("payouts_distributor_unpayable_total", "Claims failed before sending.", s.unpayable),
            (
                "payouts_distributor_balance_unknown_total",
                "Times a lane did not sign for a token because its treasury balance could not be read.",
                s.balance_unknown,
            ),
            (
                "payouts_distributor_congestion_rejections_total",
                "Submissions rejected with ShardCongested or ShardStuck (each slows its lane down; nothing fails).",
                s.congestion_rejections,
            ),
        ];
        for (name, help, v) in counters {
            counter(e, name, help, v)?;
        }
        gauge(
            e,
            "payouts_distributor_keys_held",
            "Keys leased now.",
            s.keys_held,
        )?;
        gauge(
            e,
            "payouts_distributor_in_flight",
            "Transactions in flight on our lanes.",
            s.in_flight,
        )?;
        gauge(
            e,
            "payouts_distributor_paused",
            "1 while paused by a guard.",
            s.paused,
        )?;
        gauge(
            e,
            "payouts_distributor_lanes_congested",
            "Lanes backing off after congestion now.",
            s.lanes_congested,
        )?;
        if let Ok(price) = s.gas_price.parse::<u128>() {
            // Display only: a gauge is a float (an integer gauge would have to be i64).
            gauge(
                e,
                "payouts_distributor_gas_price_yocto",
                "Latest gas price read (yocto NEAR per gas; never below the protocol's min_gas_price).",
                price as f64,
            )?;
        }
        if !s.gas.is_empty() {
            let basis: Vec<String> = s
                .gas
                .iter()
                .map(|t| {
                    serde_json::to_value(t.basis)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                })
                .collect();
            let labels: Vec<[(&str, &str); 2]> = s
                .gas
                .iter()
                .zip(&basis)
                .map(|(t, b)| [("token", t.token.as_str()), ("basis", b.as_str())])
                .collect();
            gauges(
                e,
                "payouts_distributor_gas_per_transfer",
                "Gas attached per transfer action, per token (learned from outcomes, or configured).",
                labels.iter().zip(&s.gas).map(|(l, t)| (&l[..], t.gas_per_action)),
            )?;
            let tokens: Vec<[(&str, &str); 1]> = s
                .gas
                .iter()
                .map(|t| [("token", t.token.as_str())])
                .collect();
            gauges(
                e,
                "payouts_distributor_transfers_per_tx",
                "Transfers per transaction the chosen gas allows, per token.",
                tokens
                    .iter()
                    .zip(&s.gas)
                    .map(|(l, t)| (&l[..], t.transfers_per_tx as u64)),
            )?;
        }
        payouts_near::rpc::encode_endpoints(e, &s.rpc_endpoints)?;
        for (name, help, h) in [
            (
                "payouts_distributor_broadcast_latency_seconds",
                "Time of a broadcast call.",
                &s.broadcast_latency,
            ),
            (
                "payouts_distributor_settle_latency_seconds",
                "Time from storing a transaction to seeing it settled.",
                &s.settle_latency,
            ),
        ] {
            histogram(
                e,
                name,
                help,
                HistogramSeries {
                    bounds: &LATENCY_BUCKETS,
                    counts: &h.counts,
                    sum: h.sum_seconds,
                },
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_sum() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(7));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.counts[0], 1);
        assert_eq!(s.counts[1], 1);
        assert_eq!(s.counts[LATENCY_BUCKETS.len()], 1);
        assert_eq!(s.count(), 3);
        assert!((s.sum_seconds - 60.01).abs() < 1e-6);
    }
}
