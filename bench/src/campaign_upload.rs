//! `payouts bench campaign-upload --rows N [--dry-run]`: how fast the API checks and stores a campaign file,
//! and how much memory its process needs for it.
//!
//! A CSV of N valid rows (many receivers, every row with an `external_id`, a memo on every third, every
//! tenth in token units) is written to a temporary file; a throwaway Postgres and the devnet (for the token's
//! decimals) are started, then for each phase a fresh `payouts api` process and the real CLI,
//! `payouts campaign upload`, streaming the file to it: the dry run (validate only), then — without
//! `--dry-run` — the real upload (validate, then store every row as a claim in one DB transaction). Reported
//! per phase: rows/s (CLI start → exit), the server's CPU time and its peak resident memory (`VmHWM` of the
//! server process, fresh for each phase). Goals: ≥ 50,000 rows/s, < 200 MB.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use payouts_devnet::Devnet;
use payouts_store::testdb::TestDb;
use serde::Serialize;

use crate::api_child::ApiServer;
use crate::report::machine;

/// `payouts bench campaign-upload`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct CampaignUploadArgs {
    /// Rows in the generated file.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Only the dry run (validate, write nothing).
    #[arg(long)]
    pub dry_run: bool,
    /// Distinct receivers the rows are spread over (drawn in turn).
    #[arg(long, default_value_t = 100_000)]
    pub receivers: u64,
    /// Where `campaign-upload.json` goes (created if missing).
    #[arg(long, default_value = "bench-report")]
    pub report_dir: PathBuf,
}

/// Rows/s goal.
pub const GOAL_ROWS_PER_S: f64 = 50_000.0;
/// Peak memory goal of the server, bytes.
pub const GOAL_PEAK_BYTES: u64 = 200 * 1024 * 1024;

/// One phase's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// `dry_run` or `upload`.
    pub phase: String,
    /// Exit status of the CLI.
    pub exit_code: i32,
    /// Rows the API counted.
    pub rows: u64,
    /// Valid rows.
    pub valid: u64,
    /// Claims inserted (0 in a dry run).
    pub inserted: u64,
    /// CLI start → exit, seconds.
    pub elapsed_s: f64,
    /// rows ÷ elapsed.
    pub rows_per_s: f64,
    /// The server's CPU time (user + system) over the phase, seconds.
    pub server_cpu_s: f64,
    /// The server's peak resident memory, bytes.
    pub server_peak_rss_bytes: u64,
}

/// `campaign-upload.json`.
#[derive(Debug, Serialize)]
pub struct UploadReport {
    /// When it ran.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// nproc, OS.
    pub machine: crate::report::Machine,
    /// Rows in the file.
    pub rows: u64,
    /// Bytes in the file.
    pub file_bytes: u64,
    /// Receivers.
    pub receivers: u64,
    /// Per phase.
    pub phases: Vec<Phase>,
    /// Goals.
    pub goal_rows_per_s: f64,
    /// Goals.
    pub goal_peak_rss_bytes: u64,
}

/// Row `i` of a generated campaign file (CSV, columns `receiver_id,amount,amount_tokens,memo,external_id`).
pub fn csv_row(i: u64, receiver: &str) -> String {
    let memo = if i % 3 == 0 {
        format!("bench row {i}")
    } else {
        String::new()
    };
    // Every tenth row in token units (the devnet token has 24 decimals).
    let (amount, tokens) = if i % 10 == 0 {
        (String::new(), format!("0.{:06}", 1 + i % 999_999))
    } else {
        ((1 + i % 1_000).to_string(), String::new())
    };
    format!("{receiver},{amount},{tokens},{memo},row-{i}\n")
}

/// Writes an N-row campaign CSV whose row `i` pays `receiver(i)`; its size in bytes.
pub fn write_csv(path: &Path, rows: u64, receiver: impl Fn(u64) -> String) -> anyhow::Result<u64> {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    w.write_all(b"receiver_id,amount,amount_tokens,memo,external_id\n")?;
    for i in 0..rows {
        w.write_all(csv_row(i, &receiver(i)).as_bytes())?;
    }
    w.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// `[api]` settings that let a file of `bytes` and `rows` through.
pub fn api_limits(bytes: u64, rows: u64) -> String {
    format!(
        "campaign_max_bytes = {}\ncampaign_max_rows = {}\n",
        (bytes * 2).max(256 * 1024 * 1024),
        rows.max(1_000_000)
    )
}

async fn phase(
    name: &str,
    dir: &Path,
    db: &TestDb,
    rpc: &str,
    file: &Path,
    extra: &str,
    args: &[&str],
) -> anyhow::Result<Phase> {
    let server = ApiServer::start(dir, db.url().expose(), rpc, extra).await?;
    let cpu_before = server.cpu()?;
    let up = server.upload(file, args).await?;
    let cpu = server.cpu()?.saturating_sub(cpu_before);
    let peak = server.peak_rss()?;
    server.stop().await?;
    anyhow::ensure!(
        up.code == 0,
        "{name}: payouts campaign upload exited {}: {}{}",
        up.code,
        up.stderr,
        up.answer
    );
    let t = &up.answer["totals"];
    let rows = t["rows"].as_u64().unwrap_or(0);
    let secs = up.elapsed.as_secs_f64().max(1e-9);
    Ok(Phase {
        phase: name.to_string(),
        exit_code: up.code,
        rows,
        valid: t["valid"].as_u64().unwrap_or(0),
        inserted: up.answer["inserted"].as_u64().unwrap_or(0),
        elapsed_s: secs,
        rows_per_s: rows as f64 / secs,
        server_cpu_s: cpu.as_secs_f64(),
        server_peak_rss_bytes: peak,
    })
}

/// Runs the benchmark, prints the figures and writes `campaign-upload.json`.
pub async fn run(args: CampaignUploadArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rows > 0 && args.receivers > 0,
        "--rows and --receivers: at least 1"
    );
    let started_at = chrono::Utc::now();
    let dir = tempfile::tempdir().context("a temporary directory")?;
    let file = dir.path().join("campaign.csv");
    let receivers = args.receivers;
    let bytes = write_csv(&file, args.rows, |i| {
        format!("user-{}.devnet", 2 * (i % receivers))
    })?;
    println!(
        "payouts bench campaign-upload: {} rows, {:.1} MB, {receivers} receivers",
        args.rows,
        bytes as f64 / 1e6
    );
    // Receivers must be registered with the token (the API checks when the distributor does not register
    // them): the devnet registers its even-numbered users.
    let users = receivers.saturating_mul(2);
    let (devnet, _keys) = Devnet::start_for_tests(|c| {
        c.rpc_timeout_ms = 10_000;
        if users > 1_000 {
            c.users = Some(u32::try_from(users).unwrap_or(u32::MAX));
        }
    })
    .await
    .context("starting the devnet")?;
    let db = TestDb::new().await;
    let extra = api_limits(bytes, args.rows);
    let rpc = devnet.rpc_url();
    let mut phases = vec![
        phase(
            "dry_run",
            dir.path(),
            &db,
            &rpc,
            &file,
            &extra,
            &["--dry-run"],
        )
        .await?,
    ];
    if !args.dry_run {
        phases.push(phase("upload", dir.path(), &db, &rpc, &file, &extra, &[]).await?);
    }
    devnet.shutdown().await;
    for p in &phases {
        let verdict = |ok: bool| if ok { "ok" } else { "BELOW GOAL" };
        println!(
            "{:<8} {} rows ({} valid, {} inserted) in {:.2} s: {:.0} rows/s [{}]; server CPU {:.2} s ({:.0} % of the wall time), peak RSS {:.1} MB [{}]",
            p.phase,
            p.rows,
            p.valid,
            p.inserted,
            p.elapsed_s,
            p.rows_per_s,
            verdict(p.rows_per_s >= GOAL_ROWS_PER_S),
            p.server_cpu_s,
            100.0 * p.server_cpu_s / p.elapsed_s,
            p.server_peak_rss_bytes as f64 / (1024.0 * 1024.0),
            verdict(p.server_peak_rss_bytes < GOAL_PEAK_BYTES),
        );
    }
    let report = UploadReport {
        started_at,
        machine: machine(),
        rows: args.rows,
        file_bytes: bytes,
        receivers,
        phases,
        goal_rows_per_s: GOAL_ROWS_PER_S,
        goal_peak_rss_bytes: GOAL_PEAK_BYTES,
    };
    std::fs::create_dir_all(&args.report_dir)?;
    let out = args.report_dir.join("campaign-upload.json");
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    println!("report:   {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_rows_mix_units_memos_and_keys() {
        assert_eq!(csv_row(0, "a.near"), "a.near,,0.000001,bench row 0,row-0\n");
        assert_eq!(csv_row(1, "b.near"), "b.near,2,,,row-1\n");
        assert_eq!(csv_row(3, "c.near"), "c.near,4,,bench row 3,row-3\n");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.csv");
        let bytes = write_csv(&path, 3, |i| format!("u{i}.near")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4);
        assert_eq!(bytes, text.len() as u64);
    }
}
