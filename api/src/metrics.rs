//! Prometheus text exposition (format 0.0.4), written by hand: HTTP request metrics kept here, the indexer's,
//! distributor's and webhook worker's in-process metrics when this process runs them, and gauges read from
//! the database.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use payouts_distributor::metrics::{HistogramSnapshot, LATENCY_BUCKETS};
use payouts_distributor::DistributorSnapshot;
use payouts_indexer::MetricsSnapshot;
use payouts_store::webhooks::EndpointSummary;
use payouts_webhooks::WebhookMetrics;

/// Upper bounds (seconds) of the HTTP latency buckets; `+Inf` is implied.
pub const HTTP_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Latency {
    counts: [u64; HTTP_BUCKETS.len() + 1],
    sum_seconds: f64,
}

/// One route template's series.
#[derive(Default)]
struct RouteStats {
    /// (method, status) → requests.
    requests: HashMap<(&'static str, u16), u64>,
    /// method → latency histogram.
    latency: HashMap<&'static str, Latency>,
}

/// HTTP request counters and latency histograms, labelled by method, route template and status.
/// Routes are templates (`/claims/{id}`), unknown paths count as `unmatched`: the label set stays small.
#[derive(Default)]
pub struct HttpMetrics {
    routes: Mutex<HashMap<String, RouteStats>>,
}

impl std::fmt::Debug for HttpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpMetrics")
    }
}

/// A method label from a small fixed set.
pub(crate) fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

impl HttpMetrics {
    /// Records one finished request.
    pub fn observe(&self, method: &'static str, route: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = HTTP_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(HTTP_BUCKETS.len());
        let mut routes = self
            .routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // No allocation once a route has been seen.
        let stats = match routes.get_mut(route) {
            Some(s) => s,
            None => routes.entry(route.to_string()).or_default(),
        };
        *stats.requests.entry((method, status)).or_insert(0) += 1;
        let lat = stats.latency.entry(method).or_default();
        lat.counts[bucket] += 1;
        lat.sum_seconds += secs;
    }

    /// Requests counted so far with this route and status (for tests and the dashboard).
    pub fn requests(&self, route: &str, status: u16) -> u64 {
        let routes = self
            .routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        routes.get(route).map_or(0, |s| {
            s.requests
                .iter()
                .filter(|((_, st), _)| *st == status)
                .map(|(_, n)| n)
                .sum()
        })
    }

    /// Writes the HTTP series.
    pub fn render(&self, out: &mut Prom) {
        let routes = self
            .routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Sorted, so scrapes list series in a stable order.
        let sorted: BTreeMap<&str, &RouteStats> =
            routes.iter().map(|(r, s)| (r.as_str(), s)).collect();
        out.header(
            "payouts_http_requests_total",
            "counter",
            "HTTP requests answered, by method, route template and status.",
        );
        for (route, stats) in &sorted {
            let counts: BTreeMap<_, _> = stats.requests.iter().collect();
            for ((method, status), n) in counts {
                out.sample(
                    "payouts_http_requests_total",
                    &[
                        ("method", method),
                        ("route", route),
                        ("status", &status.to_string()),
                    ],
                    *n as f64,
                );
            }
        }
        out.header(
            "payouts_http_request_duration_seconds",
            "histogram",
            "Time to answer an HTTP request, by method and route template.",
        );
        for (route, stats) in &sorted {
            let lat: BTreeMap<_, _> = stats.latency.iter().collect();
            for (method, l) in lat {
                out.histogram(
                    "payouts_http_request_duration_seconds",
                    &[("method", method), ("route", route)],
                    &HTTP_BUCKETS,
                    &l.counts,
                    l.sum_seconds,
                );
            }
        }
    }
}

/// A Prometheus text-format writer.
#[derive(Debug, Default)]
pub struct Prom {
    buf: String,
}

fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn fmt_value(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.is_nan() {
        "NaN".to_string()
    } else {
        format!("{v}")
    }
}

impl Prom {
    /// `# HELP` and `# TYPE` lines.
    pub fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.buf, "# HELP {name} {help}");
        let _ = writeln!(self.buf, "# TYPE {name} {kind}");
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.buf.push_str(name);
        if !labels.is_empty() {
            self.buf.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.buf.push(',');
                }
                let _ = write!(self.buf, "{k}=\"{}\"", escape_label(v));
            }
            self.buf.push('}');
        }
        let _ = writeln!(self.buf, " {}", fmt_value(value));
    }

    /// A metric with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.header(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The `_bucket`, `_sum` and `_count` lines of a histogram from per-bucket (non-cumulative) counts,
    /// whose last entry is the `+Inf` bucket.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
    ) {
        let mut cumulative = 0u64;
        for (i, c) in counts.iter().enumerate() {
            cumulative += c;
            let le = bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| fmt_value(*b));
            let mut l: Vec<(&str, &str)> = labels.to_vec();
            l.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &l, cumulative as f64);
        }
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, cumulative as f64);
    }

    /// The text.
    pub fn finish(self) -> String {
        self.buf
    }
}

/// Writes the indexer's in-process metrics.
pub fn render_indexer(out: &mut Prom, s: &MetricsSnapshot, now_nanos: u64) {
    let c = |out: &mut Prom, name: &str, help: &str, v: u64| {
        out.single(name, "counter", help, v as f64);
    };
    let g = |out: &mut Prom, name: &str, help: &str, v: f64| {
        out.single(name, "gauge", help, v);
    };
    g(
        out,
        "payouts_indexer_last_height",
        "Last committed block height.",
        s.last_height as f64,
    );
    g(
        out,
        "payouts_indexer_head_seen",
        "Highest block height seen from the source.",
        s.head_seen as f64,
    );
    g(
        out,
        "payouts_indexer_lag_blocks",
        "Blocks between the head seen and the last committed block.",
        s.lag_blocks() as f64,
    );
    g(
        out,
        "payouts_indexer_lag_seconds",
        "Seconds since the last committed block's timestamp.",
        s.lag_seconds(now_nanos),
    );
    c(
        out,
        "payouts_indexer_blocks_total",
        "Blocks committed.",
        s.blocks,
    );
    c(
        out,
        "payouts_indexer_events_matched_total",
        "Event items that matched a rule.",
        s.events_matched,
    );
    c(
        out,
        "payouts_indexer_claims_inserted_total",
        "Claims that were new rows.",
        s.claims_inserted,
    );
    c(
        out,
        "payouts_indexer_malformed_logs_total",
        "Malformed event logs of watched contracts.",
        s.malformed_logs,
    );
    c(
        out,
        "payouts_indexer_claims_confirmed_total",
        "Claims confirmed by reconciliation.",
        s.claims_confirmed,
    );
    c(
        out,
        "payouts_indexer_claims_handed_back_total",
        "Claims handed back for another try.",
        s.claims_handed_back,
    );
    c(
        out,
        "payouts_indexer_claims_failed_total",
        "Claims failed for good by reconciliation.",
        s.claims_failed,
    );
    c(
        out,
        "payouts_indexer_chain_breaks_total",
        "Blocks whose prev_hash was not the hash of the last processed block (each gap counted once).",
        s.chain_breaks,
    );
    c(
        out,
        "payouts_indexer_source_errors_total",
        "Failed fetches and listings of the block source (s3/dir).",
        s.source_errors,
    );
    g(
        out,
        "payouts_indexer_source_failing_objects",
        "Source objects failing right now.",
        s.source_failing_objects as f64,
    );
}

fn render_latency(out: &mut Prom, name: &str, help: &str, h: &HistogramSnapshot) {
    out.header(name, "histogram", help);
    out.histogram(name, &[], &LATENCY_BUCKETS, &h.counts, h.sum_seconds);
}

/// Writes the distributor's in-process metrics.
pub fn render_distributor(out: &mut Prom, s: &DistributorSnapshot) {
    let c = |out: &mut Prom, name: &str, help: &str, v: u64| {
        out.single(name, "counter", help, v as f64);
    };
    let g = |out: &mut Prom, name: &str, help: &str, v: u64| {
        out.single(name, "gauge", help, v as f64);
    };
    c(
        out,
        "payouts_distributor_batches_total",
        "Batches signed and stored.",
        s.batches,
    );
    c(
        out,
        "payouts_distributor_transfers_total",
        "Transfers in those batches.",
        s.transfers,
    );
    c(
        out,
        "payouts_distributor_broadcasts_total",
        "Broadcast calls the node accepted.",
        s.broadcasts,
    );
    c(
        out,
        "payouts_distributor_rebroadcasts_total",
        "Re-broadcasts of stored bytes.",
        s.rebroadcasts,
    );
    c(
        out,
        "payouts_distributor_txs_dead_total",
        "Transactions the indexed chain proved dead (claims handed back).",
        s.txs_dead,
    );
    c(
        out,
        "payouts_distributor_rejections_total",
        "Submissions the node rejected (reasons to look again, never a verdict).",
        s.rejections,
    );
    c(
        out,
        "payouts_distributor_nonce_resyncs_total",
        "Lane resyncs after InvalidNonce.",
        s.nonce_resyncs,
    );
    c(
        out,
        "payouts_distributor_rpc_errors_total",
        "RPC calls that failed.",
        s.rpc_errors,
    );
    c(
        out,
        "payouts_distributor_unpayable_total",
        "Claims failed before sending.",
        s.unpayable,
    );
    c(
        out,
        "payouts_distributor_balance_unknown_total",
        "Times a lane did not sign for a token because its treasury balance could not be read.",
        s.balance_unknown,
    );
    g(
        out,
        "payouts_distributor_keys_held",
        "Keys leased now.",
        s.keys_held,
    );
    g(
        out,
        "payouts_distributor_in_flight",
        "Transactions in flight on our lanes.",
        s.in_flight,
    );
    g(
        out,
        "payouts_distributor_paused",
        "1 while paused by a guard.",
        s.paused,
    );
    c(
        out,
        "payouts_distributor_congestion_rejections_total",
        "Submissions rejected with ShardCongested or ShardStuck (each slows its lane down; nothing fails).",
        s.congestion_rejections,
    );
    g(
        out,
        "payouts_distributor_lanes_congested",
        "Lanes backing off after congestion now.",
        s.lanes_congested,
    );
    if let Ok(price) = s.gas_price.parse::<u128>() {
        // Display only: a gauge is a float.
        out.single(
            "payouts_distributor_gas_price_yocto",
            "gauge",
            "Latest gas price read (yocto NEAR per gas; never below the protocol's min_gas_price).",
            price as f64,
        );
    }
    if !s.gas.is_empty() {
        out.header(
            "payouts_distributor_gas_per_transfer",
            "gauge",
            "Gas attached per transfer action, per token (learned from outcomes, or configured).",
        );
        for t in &s.gas {
            let basis = serde_json::to_value(t.basis)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            out.sample(
                "payouts_distributor_gas_per_transfer",
                &[("token", &t.token), ("basis", &basis)],
                t.gas_per_action as f64,
            );
        }
        out.header(
            "payouts_distributor_transfers_per_tx",
            "gauge",
            "Transfers per transaction the chosen gas allows, per token.",
        );
        for t in &s.gas {
            out.sample(
                "payouts_distributor_transfers_per_tx",
                &[("token", &t.token)],
                t.transfers_per_tx as f64,
            );
        }
    }
    if !s.rpc_endpoints.is_empty() {
        let per = |out: &mut Prom,
                   name: &str,
                   kind: &str,
                   help: &str,
                   v: &dyn Fn(&payouts_near::EndpointSnapshot) -> u64| {
            out.header(name, kind, help);
            for e in &s.rpc_endpoints {
                out.sample(name, &[("endpoint", &e.name)], v(e) as f64);
            }
        };
        per(out, "payouts_rpc_endpoint_up", "gauge", "1 while an RPC endpoint is healthy (not resting after a failure). The label is its name or redacted URL.", &|e| u64::from(e.healthy));
        per(
            out,
            "payouts_rpc_requests_total",
            "counter",
            "Requests sent to an RPC endpoint (reads and broadcasts).",
            &|e| e.requests,
        );
        per(out, "payouts_rpc_errors_total", "counter", "Requests to an RPC endpoint that got no answer (transport, timeout, HTTP error, internal error).", &|e| e.errors);
        per(
            out,
            "payouts_rpc_throttled_total",
            "counter",
            "Requests an RPC endpoint answered with 429.",
            &|e| e.throttled,
        );
        per(
            out,
            "payouts_rpc_failovers_total",
            "counter",
            "Requests that moved on from an RPC endpoint to the next after it failed.",
            &|e| e.failovers,
        );
        per(
            out,
            "payouts_rpc_broadcasts_total",
            "counter",
            "Transaction broadcasts sent to an RPC endpoint.",
            &|e| e.broadcasts,
        );
    }
    render_latency(
        out,
        "payouts_distributor_broadcast_latency_seconds",
        "Time of a broadcast call.",
        &s.broadcast_latency,
    );
    render_latency(
        out,
        "payouts_distributor_settle_latency_seconds",
        "Time from storing a transaction to seeing it settled.",
        &s.settle_latency,
    );
}

/// Writes the webhook delivery worker's in-process counters.
pub fn render_webhooks(out: &mut Prom, m: &WebhookMetrics) {
    let c = |out: &mut Prom, name: &str, help: &str, v: u64| {
        out.single(name, "counter", help, v as f64);
    };
    c(
        out,
        "payouts_webhook_deliveries_total",
        "Webhook deliveries answered with a 2xx.",
        m.delivered.load(Ordering::Relaxed),
    );
    c(
        out,
        "payouts_webhook_failed_attempts_total",
        "Webhook requests that failed (non-2xx, timeout, connection error).",
        m.failed_attempts.load(Ordering::Relaxed),
    );
    c(
        out,
        "payouts_webhook_dead_total",
        "Webhook deliveries that ran out of attempts.",
        m.dead.load(Ordering::Relaxed),
    );
}

/// Writes the per-endpoint outbox gauges read from the database (nothing when no endpoint is configured).
pub fn render_webhook_endpoints(out: &mut Prom, endpoints: &[EndpointSummary]) {
    if endpoints.is_empty() {
        return;
    }
    out.header(
        "payouts_webhook_pending",
        "gauge",
        "Webhook deliveries waiting, including retries in back-off, per endpoint.",
    );
    for e in endpoints {
        out.sample(
            "payouts_webhook_pending",
            &[("endpoint", &e.name)],
            e.pending as f64,
        );
    }
    out.header(
        "payouts_webhook_dead",
        "gauge",
        "Webhook deliveries that ran out of attempts and were not redelivered, per endpoint.",
    );
    for e in endpoints {
        out.sample(
            "payouts_webhook_dead",
            &[("endpoint", &e.name)],
            e.dead as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_histograms_cumulative() {
        let mut p = Prom::default();
        p.sample("m", &[("a", "x\"y\\z\n")], 1.0);
        p.histogram("h", &[("r", "/")], &[0.1, 1.0], &[1, 2, 3], 4.5);
        let text = p.finish();
        assert!(text.contains("m{a=\"x\\\"y\\\\z\\n\"} 1\n"), "{text}");
        assert!(text.contains("h_bucket{r=\"/\",le=\"0.1\"} 1\n"), "{text}");
        assert!(text.contains("h_bucket{r=\"/\",le=\"1\"} 3\n"), "{text}");
        assert!(text.contains("h_bucket{r=\"/\",le=\"+Inf\"} 6\n"), "{text}");
        assert!(text.contains("h_count{r=\"/\"} 6\n"), "{text}");
        assert!(text.contains("h_sum{r=\"/\"} 4.5\n"), "{text}");
    }
}
