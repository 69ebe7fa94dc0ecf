//! `report.json`: what a run measured, and writing it (with the chart) to `--report-dir`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::args::WebhookMode;
use crate::chart::write_chart;
use crate::ledger::LedgerCheck;
use crate::receivers::Landed;
use crate::sampling::Sample;

/// What coalescing did: claims and transfers landed apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimsAndTransfers {
    /// `--receivers`.
    pub receivers: String,
    /// `--coalesce`.
    pub coalesce: bool,
    /// Rates.
    pub landed: Landed,
    /// p95 latency pending → confirmed (final and indexed), in blocks.
    pub p95_blocks: f64,
    /// Created → landed (the block of the receipt that paid the claim), seconds.
    #[serde(default)]
    pub landing: Option<Latency>,
    /// p95 of created → landed, in blocks.
    #[serde(default)]
    pub landing_p95_blocks: Option<f64>,
}

/// `DIR/report.json`: everything `payouts bench` measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// When the run started (UTC).
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// What ran.
    pub settings: Settings,
    /// Where it ran.
    pub machine: Machine,
    /// Counts at the end.
    pub totals: Totals,
    /// Confirmations per second.
    pub throughput: Throughput,
    /// Seconds from pending to confirmed.
    pub latency: Latency,
    /// Means of where a confirmed claim's time went, in seconds.
    pub time_split: TimeSplit,
    /// `confirmed / (confirmed + failed)` over the run's claims (`null` when none finished).
    pub success_share: Option<f64>,
    /// Claims paid more than once plus transfers naming no claim of the run: must be 0.
    pub duplicates: u64,
    /// The ledger check `duplicates` comes from.
    pub ledger: LedgerCheck,
    /// The webhook receiver, with `--webhook`.
    pub webhooks: Option<WebhookSummary>,
    /// Claims and transfers apart, and who was paid.
    #[serde(default)]
    pub claims_and_transfers: Option<ClaimsAndTransfers>,
    /// One sample a second.
    pub series: Vec<Sample>,
}

/// The run's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// `backlog` (`--claims`) or `sustained` (`--rate`, `--duration-secs`).
    pub mode: String,
    /// Backlog: claims inserted at once.
    pub claims: Option<u64>,
    /// Sustained: claims fed per second.
    pub rate: Option<u64>,
    /// Sustained: seconds fed.
    pub duration_secs: Option<u64>,
    /// Treasury keys (nonce lanes).
    pub keys: usize,
    /// `ft_transfer`s per transaction asked for (`--per-tx`).
    pub per_tx_requested: usize,
    /// `ft_transfer`s per transaction used (the distributor's limits may lower it).
    pub per_tx: usize,
    /// Transactions in flight per key.
    pub max_in_flight: usize,
    /// Devnet block time.
    pub block_time_ms: u64,
    /// Per-block gas limit in Tgas; `null` when lifted.
    pub gas_limit_tgas: Option<f64>,
    /// Whether `--lift-gas-limit` was given.
    pub gas_limit_lifted: bool,
    /// `ok`, `hang` or `null` (no webhooks).
    pub webhook: Option<String>,
    /// `--campaign`: the backlog was one campaign uploaded through `payouts api`.
    #[serde(default)]
    pub campaign: bool,
}

/// The machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// `std::thread::available_parallelism`.
    pub nproc: usize,
    /// `PRETTY_NAME` of /etc/os-release, if readable.
    pub os: Option<String>,
    /// CPU architecture.
    pub arch: String,
}

/// Counts at the end of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Claims fed.
    pub fed: u64,
    /// Claims confirmed.
    pub confirmed: i64,
    /// Claims failed for good.
    pub failed: i64,
    /// Claims still open.
    pub open: i64,
    /// Seconds from start to the last claim settled.
    pub elapsed_s: f64,
    /// Devnet blocks produced.
    pub blocks: u64,
    /// Confirmed transfers per block.
    pub transfers_per_block: f64,
    /// Distributor: transactions (batches) signed.
    pub batches: u64,
    /// Distributor: transfers sent.
    pub transfers: u64,
    /// Distributor: rebroadcasts.
    pub rebroadcasts: u64,
    /// Distributor: transactions found dead.
    pub txs_dead: u64,
    /// Distributor: RPC errors.
    pub rpc_errors: u64,
}

/// Confirmations per second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Confirmed claims ÷ seconds from the first claim's creation to the last confirmation.
    pub overall_per_s: f64,
    /// Those seconds.
    pub span_s: f64,
    /// Sustained: mean of the 10-s windows of the feed after the first.
    pub sustained_mean_per_s: Option<f64>,
    /// Sustained: lowest of those windows.
    pub sustained_min_per_s: Option<f64>,
    /// Sustained: every 10-s window of the feed, the first included.
    pub windows_10s_per_s: Vec<f64>,
    /// With the gas limit: compute limit (= gas limit) ÷ compute per transfer ÷ block time.
    pub single_token_ceiling_per_s: Option<f64>,
    /// With the gas limit: Tgas burnt per confirmed transfer.
    pub tgas_per_transfer: Option<f64>,
    /// With the gas limit: `overall_per_s / single_token_ceiling_per_s`.
    pub ceiling_share: Option<f64>,
    /// `--campaign`: claims/s from the upload's end to the last confirmation (1-s sampling).
    #[serde(default)]
    pub campaign_paid_per_s: Option<f64>,
}

/// Seconds from pending to confirmed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50_s: f64,
    /// 95th percentile.
    pub p95_s: f64,
    /// 99th percentile.
    pub p99_s: f64,
}

/// Means of where a confirmed claim's time went, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeSplit {
    /// Claim created → its transaction signed and stored.
    pub queue_s: f64,
    /// Stored → first accepted broadcast.
    pub broadcast_s: f64,
    /// Stored → confirmed.
    pub settle_s: f64,
}

/// The webhook receiver's side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookSummary {
    /// `ok` or `hang`.
    pub mode: String,
    /// Requests the receiver got.
    pub received: u64,
    /// Deliveries the worker counted as done.
    pub delivered: u64,
    /// Failed attempts.
    pub failed_attempts: u64,
    /// Deliveries still pending at the end.
    pub pending: i64,
}

pub(crate) fn machine() -> Machine {
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim().trim_matches('"').to_string())
        });
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        os,
        arch: std::env::consts::ARCH.to_string(),
    }
}

pub(crate) fn webhook_name(mode: WebhookMode) -> &'static str {
    match mode {
        WebhookMode::Ok => "ok",
        WebhookMode::Hang => "hang",
    }
}

/// Writes `dir/report.json` and `dir/throughput.svg`; returns their paths.
pub fn write_report(dir: &Path, report: &Report) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    let svg = dir.join("throughput.svg");
    let s = &report.settings;
    let what = match (s.rate, s.duration_secs, s.claims) {
        (Some(r), Some(d), _) => format!("fed {r}/s for {d} s"),
        (_, _, Some(n)) => format!("backlog of {n}"),
        _ => s.mode.clone(),
    };
    let gas = s
        .gas_limit_tgas
        .map_or("gas limit lifted".to_string(), |g| {
            format!("{g:.0} Tgas blocks")
        });
    let title = format!(
        "payouts bench: {what}; {} keys × {}/tx, block {} ms, {gas}",
        s.keys, s.per_tx, s.block_time_ms
    );
    write_chart(
        &svg,
        &title,
        &report.series,
        report.throughput.single_token_ceiling_per_s,
    )
    .with_context(|| format!("writing {}", svg.display()))?;
    Ok((json, svg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::tests::series;
    use crate::sampling::{window_rates, WINDOW_SECS};

    fn report() -> Report {
        let series = series();
        Report {
            started_at: "2026-11-23T10:00:00Z".parse().unwrap(),
            settings: Settings {
                campaign: false,
                mode: "sustained".into(),
                claims: None,
                rate: Some(100),
                duration_secs: Some(20),
                keys: 8,
                per_tx_requested: 83,
                per_tx: 83,
                max_in_flight: 32,
                block_time_ms: 500,
                gas_limit_tgas: Some(1000.0),
                gas_limit_lifted: false,
                webhook: Some("hang".into()),
            },
            machine: Machine {
                nproc: 2,
                os: Some("Debian GNU/Linux 12 (bookworm)".into()),
                arch: "x86_64".into(),
            },
            totals: Totals {
                fed: 2_000,
                confirmed: 2_000,
                failed: 0,
                open: 0,
                elapsed_s: 30.0,
                blocks: 60,
                transfers_per_block: 2_000.0 / 60.0,
                batches: 25,
                transfers: 2_000,
                rebroadcasts: 0,
                txs_dead: 0,
                rpc_errors: 0,
            },
            throughput: Throughput {
                campaign_paid_per_s: None,
                overall_per_s: 100.0,
                span_s: 20.0,
                sustained_mean_per_s: Some(100.0),
                sustained_min_per_s: Some(100.0),
                windows_10s_per_s: window_rates(&series, WINDOW_SECS, 20.0),
                single_token_ceiling_per_s: Some(150.0),
                tgas_per_transfer: Some(2.5),
                ceiling_share: Some(100.0 / 150.0),
            },
            latency: Latency {
                p50_s: 2.25,
                p95_s: 2.5,
                p99_s: 3.0,
            },
            time_split: TimeSplit {
                queue_s: 0.25,
                broadcast_s: 0.5,
                settle_s: 2.0,
            },
            success_share: Some(1.0),
            duplicates: 0,
            ledger: LedgerCheck {
                transfers: 2_000,
                claims_paid: 2_000,
                ..LedgerCheck::default()
            },
            webhooks: Some(WebhookSummary {
                mode: "hang".into(),
                received: 10,
                delivered: 0,
                failed_attempts: 10,
                pending: 4_000,
            }),
            claims_and_transfers: None,
            series,
        }
    }

    #[test]
    fn report_json_round_trip() {
        let r = report();
        let json = serde_json::to_string_pretty(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["latency"]["p99_s"], 3.0);
        assert_eq!(v["duplicates"], 0);
        assert_eq!(v["series"].as_array().unwrap().len(), 31);
        assert_eq!(v["settings"]["webhook"], "hang");
    }

    #[test]
    fn writes_report_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("nested/report");
        let (json, svg) = write_report(&out, &report()).unwrap();
        assert_eq!(json, out.join("report.json"));
        let back: Report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(back, report());
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("<svg"), "{text}");
        assert!(text.trim_end().ends_with("</svg>"));
        // per second, moving average, ceiling: three lines (plus the legend's samples).
        assert!(text.matches("<polyline").count() >= 3, "{text}");
        assert!(text.contains("transfers confirmed / s"));
        // Without a ceiling, and with an empty series, it still draws.
        let mut r = report();
        r.throughput.single_token_ceiling_per_s = None;
        r.series.clear();
        write_report(&out, &r).unwrap();
        assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    }
}
