//! Prometheus exposition (OpenMetrics text, through `prometheus-client`) for the workers' collectors.
//!
//! Each worker (indexer, distributor, webhooks) implements [`Collector`] for its own metrics and the binary
//! registers the ones it runs in one [`Registry`] it owns; the API encodes that registry on `/metrics`
//! without knowing any worker crate. Values are read from the workers' atomics at scrape time, so the hot
//! paths keep their plain counters. These helpers keep the collectors short: names are the exposed ones
//! (a counter's `_total` suffix is added by the encoder, so a name given with it is trimmed first).

use std::fmt;

pub use prometheus_client::collector::Collector;
pub use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder};
use prometheus_client::encoding::{EncodeGaugeValue, NoLabelSet};
use prometheus_client::metrics::MetricType;
pub use prometheus_client::registry::Registry;

/// The content type of what [`encode`] writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of one series: `(name, value)` pairs.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// `prometheus-client` writes label values as given: quotes, backslashes and newlines are escaped here, as
/// the exposition format requires (endpoint names come from the configuration and may hold any of them).
fn escaped<'a>(labels: Labels<'a>) -> Vec<(&'a str, String)> {
    labels
        .iter()
        .map(|(k, v)| {
            let mut e = String::with_capacity(v.len());
            for c in v.chars() {
                match c {
                    '\\' => e.push_str("\\\\"),
                    '"' => e.push_str("\\\""),
                    '\n' => e.push_str("\\n"),
                    c => e.push(c),
                }
            }
            (*k, e)
        })
        .collect()
}

fn family_name(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

/// A counter with one unlabelled series.
pub fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    enc.encode_descriptor(family_name(name), help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

/// A gauge with one unlabelled series.
pub fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: impl EncodeGaugeValue,
) -> fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&v)
}

/// A counter family: one series per `(labels, value)`.
pub fn counters<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels<'a>, u64)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(family_name(name), help, None, MetricType::Counter)?;
    for (labels, v) in series {
        m.encode_family(&escaped(labels))?
            .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
    }
    Ok(())
}

/// A gauge family: one series per `(labels, value)`.
pub fn gauges<'a, V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels<'a>, V)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in series {
        m.encode_family(&escaped(labels))?.encode_gauge(&v)?;
    }
    Ok(())
}

/// One histogram series: per-bucket (not cumulative) counts for `bounds` plus a last `+Inf` bucket, and the
/// sum of the observed values.
#[derive(Debug, Clone, Copy)]
pub struct HistogramSeries<'a> {
    /// Upper bounds of the finite buckets.
    pub bounds: &'a [f64],
    /// `bounds.len() + 1` counts, the last one the `+Inf` bucket.
    pub counts: &'a [u64],
    /// Sum of the observations.
    pub sum: f64,
}

impl HistogramSeries<'_> {
    fn encode(&self, m: &mut MetricEncoder) -> fmt::Result {
        let buckets: Vec<(f64, u64)> = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, c)| (self.bounds.get(i).copied().unwrap_or(f64::MAX), *c))
            .collect();
        let count = self.counts.iter().sum();
        m.encode_histogram::<NoLabelSet>(self.sum, count, &buckets, None)
    }
}

/// A histogram with one unlabelled series.
pub fn histogram(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: HistogramSeries,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    h.encode(&mut m)
}

/// A histogram family: one series per `(labels, histogram)`.
pub fn histograms<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels<'a>, HistogramSeries<'a>)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in series {
        h.encode(&mut m.encode_family(&escaped(labels))?)?;
    }
    Ok(())
}

/// The whole exposition of `registries`, in order, ending with `# EOF`.
pub fn encode(registries: &[&Registry]) -> Result<String, fmt::Error> {
    let mut out = String::new();
    for r in registries {
        prometheus_client::encoding::text::encode_registry(&mut out, r)?;
    }
    prometheus_client::encoding::text::encode_eof(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Sample;

    impl Collector for Sample {
        fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
            counter(&mut enc, "c_total", "A counter.", 3)?;
            gauges(
                &mut enc,
                "g",
                "A gauge.",
                [(&[("a", "x\"y\\z\n")][..], 2i64)],
            )?;
            histograms(
                &mut enc,
                "h",
                "A histogram.",
                [(
                    &[("r", "/")][..],
                    HistogramSeries {
                        bounds: &[0.1, 1.0],
                        counts: &[1, 2, 3],
                        sum: 4.5,
                    },
                )],
            )
        }
    }

    #[test]
    fn counters_gain_total_labels_are_escaped_and_histograms_cumulative() {
        let mut r = Registry::default();
        r.register_collector(Box::new(Sample));
        let text = encode(&[&r]).unwrap();
        assert!(text.contains("# TYPE c counter\nc_total 3\n"), "{text}");
        assert!(text.contains("g{a=\"x\\\"y\\\\z\\n\"} 2\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"0.1\",r=\"/\"} 1\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"1.0\",r=\"/\"} 3\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"+Inf\",r=\"/\"} 6\n"), "{text}");
        assert!(text.contains("h_count{r=\"/\"} 6\n"), "{text}");
        assert!(text.contains("h_sum{r=\"/\"} 4.5\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
