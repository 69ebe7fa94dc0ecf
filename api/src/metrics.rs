//! The API's own HTTP request metrics (counters and latency histograms by method, route template and
//! status), exposed on `/metrics` by their [`Collector`](payouts_near::prom::Collector) impl beside the
//! workers' collectors the binary registers (see [`crate::routes::metrics`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

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
}

/// The HTTP series, sorted so scrapes list them in a stable order.
impl payouts_near::prom::Collector for HttpMetrics {
    fn encode(&self, mut enc: payouts_near::prom::DescriptorEncoder) -> std::fmt::Result {
        use payouts_near::prom::{counters, histograms, HistogramSeries};
        let routes = self
            .routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sorted: BTreeMap<&str, &RouteStats> =
            routes.iter().map(|(r, s)| (r.as_str(), s)).collect();
        // Method and route are borrowed (the method a static label, the route from the locked map); only the
        // status needs text of its own.
        let mut requests: Vec<(&str, &str, String, u64)> = Vec::new();
        let mut latency: Vec<([(&str, &str); 2], &Latency)> = Vec::new();
        for (route, stats) in &sorted {
            let counts: BTreeMap<_, _> = stats.requests.iter().collect();
            for ((method, status), n) in counts {
                requests.push((method, route, status.to_string(), *n));
            }
            let lat: BTreeMap<_, _> = stats.latency.iter().collect();
            for (method, l) in lat {
                latency.push(([("method", method), ("route", route)], l));
            }
        }
        let request_labels: Vec<[(&str, &str); 3]> = requests
            .iter()
            .map(|(m, r, s, _)| [("method", *m), ("route", *r), ("status", s.as_str())])
            .collect();
        counters(
            &mut enc,
            "payouts_http_requests_total",
            "HTTP requests answered, by method, route template and status.",
            request_labels
                .iter()
                .zip(&requests)
                .map(|(l, (.., n))| (&l[..], *n)),
        )?;
        histograms(
            &mut enc,
            "payouts_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            latency.iter().map(|(l, h)| {
                (
                    &l[..],
                    HistogramSeries {
                        bounds: &HTTP_BUCKETS,
                        counts: &h.counts,
                        sum: h.sum_seconds,
                    },
                )
            }),
        )
    }
}
