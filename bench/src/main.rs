//! The `payouts-bench` binary: `payouts bench …` forwards here (same arguments).
//!
//! Logs go to stderr: filter from `RUST_LOG`, else `PAYOUTS_LOG__LEVEL` (set by `payouts bench` from the
//! configuration's `[log] level`), else `info`; `PAYOUTS_LOG__FORMAT=json` for JSON lines.

use std::process::ExitCode;

use clap::Parser;
use payouts_bench::{BenchArgs, CampaignUploadArgs};
use tracing_subscriber::EnvFilter;

/// End-to-end benchmark against the devnet (pending claim → confirmed).
#[derive(Debug, Parser)]
#[command(
    name = "payouts-bench",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Another benchmark than the payout pipeline's.
    #[command(subcommand)]
    command: Option<BenchCommand>,
    #[command(flatten)]
    args: BenchArgs,
}

/// The other benchmarks.
#[derive(Debug, clap::Subcommand)]
enum BenchCommand {
    /// `POST /campaigns`: a generated N-row CSV uploaded with `payouts campaign upload` to a real
    /// `payouts api` (throwaway Postgres, devnet): rows/s of the dry run and the real upload, and the
    /// server's peak memory (goals ≥ 50,000 rows/s, < 200 MB).
    CampaignUpload(CampaignUploadArgs),
}

fn init_logging() {
    let level = std::env::var("PAYOUTS_LOG__LEVEL").unwrap_or_else(|_| "info".to_string());
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = std::env::var("PAYOUTS_LOG__FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Some(BenchCommand::CampaignUpload(args)) => {
                payouts_bench::campaign_upload::run(args).await
            }
            None => payouts_bench::run(cli.args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
