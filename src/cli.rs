//! Command-line interface: one binary, one subcommand per role.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// near-payouts: pays NEP-141 tokens on NEAR when on-chain events happen, exactly once.
#[derive(Debug, Parser)]
#[command(name = "payouts", version, about)]
pub struct Cli {
    /// Configuration file (TOML). Default: ./payouts.toml when it exists. Every key can be overridden by
    /// PAYOUTS_<SECTION>__<KEY> environment variables.
    #[arg(long, global = true, env = "PAYOUTS_CONFIG")]
    pub config: Option<PathBuf>,

    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Indexer + distributor + API (+ webhook delivery when endpoints are configured) in one process,
    /// against the configured network.
    Run,
    /// Only the indexer: follow the chain, write claims, reconcile outcomes.
    Indexer,
    /// Only the distributor: batch, sign and send payouts.
    Distributor,
    /// Only the HTTP API and dashboard.
    Api,
    /// Only the webhook delivery worker.
    Webhooks,
    /// A local NEAR-compatible chain for development, tests and benchmarks.
    Devnet,
    /// Everything at once on this machine: throwaway Postgres, devnet, indexer, distributor, API.
    Dev(crate::dev::DevArgs),
    /// Apply database migrations and exit.
    Migrate {
        /// Revert every migration instead (drops all payouts tables and their data).
        #[arg(long)]
        revert_all: bool,
    },
    /// Re-scan a block range; idempotent, inserts nothing twice.
    Replay {
        /// First block height.
        #[arg(long)]
        from: u64,
        /// Last block height (inclusive).
        #[arg(long)]
        to: u64,
        /// Report what would be inserted without writing.
        #[arg(long)]
        dry_run: bool,
        /// Fail when no block comes for this many seconds (e.g. `--to` past the source's last block);
        /// without it the replay waits, logging what it waits for every 5 s
        /// (`indexer.replay_wait_timeout_secs`).
        #[arg(long)]
        wait_timeout_secs: Option<u64>,
    },
    /// End-to-end benchmark against the devnet (pending claim → confirmed): runs the `payouts-bench`
    /// executable beside this one with these arguments (`payouts bench --help` lists them).
    #[command(disable_help_flag = true)]
    Bench {
        /// Arguments of `payouts-bench`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Campaigns (a file of transfers paid as one): upload a CSV / JSON-lines file to the running API, or read
    /// a campaign's progress. A thin HTTP client of `POST /campaigns` and `GET /campaigns/{id}`.
    Campaign {
        /// What to do.
        #[command(subcommand)]
        action: CampaignAction,
    },
    /// Incidents (payments on chain the store did not expect): list them, or clear one so payouts of its
    /// token resume.
    Incidents {
        /// What to do.
        #[command(subcommand)]
        action: IncidentsAction,
    },
}

/// `payouts incidents …`
#[derive(Debug, Subcommand)]
pub enum IncidentsAction {
    /// Lists open incidents (newest first), or every incident with `--all`.
    List {
        /// Cleared ones too.
        #[arg(long)]
        all: bool,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Clears incident ID: the distributor signs again for its token (unless another incident is open).
    Clear {
        /// Incident id (from `payouts incidents list` or `/status`).
        id: i64,
        /// Who clears it (recorded as `cli:<by>`).
        #[arg(long, env = "USER", default_value = "operator")]
        by: String,
    },
}

/// Where the API is and how to authenticate: shared by the `payouts campaign …` subcommands.
///
/// The bearer token comes from the `PAYOUTS_API_TOKEN` environment variable or `--token-file`, never from a
/// flag value (it would show in `ps` and shell history); it is never printed.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiClientArgs {
    /// API base URL. Default: `http://<api.listen>` from the configuration (a wildcard address is reached
    /// on loopback).
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
    /// File holding the API token (its first line; wins over PAYOUTS_API_TOKEN).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Print the API's JSON answer as it is instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Give up on the request after this many seconds (the API bounds an upload by
    /// `api.campaign_timeout_ms` itself).
    #[arg(long, default_value_t = 900, value_name = "SECS")]
    pub timeout_secs: u64,
}

/// A campaign file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FileFormat {
    /// CSV with a header line (`text/csv`).
    Csv,
    /// One JSON object a line (`application/x-ndjson`).
    Jsonl,
}

/// `payouts campaign …`
#[derive(Debug, Subcommand)]
pub enum CampaignAction {
    /// Uploads FILE (CSV with a header, or JSON lines: receiver_id, amount or amount_tokens, optional memo
    /// and external_id) to `POST /campaigns`, streaming it, and prints the API's check: rows, valid,
    /// invalid, total, whether approval is needed, the campaign id and the first 50 row errors.
    ///
    /// Exit status: 0 — stored, already stored (the same file under the same name: nothing new), or a dry
    /// run that a real upload with the same flags would accept; 1 — refused or failed: row errors without
    /// --skip-invalid (also in a dry run: nothing would be stored), the name taken by another file (409),
    /// any other 4xx/5xx (the server's message is printed) or no answer; 2 — usage or configuration error
    /// (no token, unreadable file, unknown format).
    #[command(verbatim_doc_comment)]
    Upload {
        /// The campaign file (.csv, or .jsonl / .ndjson; else say --format).
        file: PathBuf,
        /// Check every row and print the result; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Store the valid rows even when some are invalid (otherwise a file with errors is refused whole).
        #[arg(long)]
        skip_invalid: bool,
        /// Token contract paying it (one of `api.allowed_tokens`; the API's first when absent).
        #[arg(long, value_name = "CONTRACT")]
        token: Option<String>,
        /// Campaign name, unique: the same name with the same file answers with the existing campaign,
        /// with another file 409. Default: the file's name.
        #[arg(long)]
        name: Option<String>,
        /// The file's format, when its extension does not say.
        #[arg(long, value_enum)]
        format: Option<FileFormat>,
        /// Where the API is, the token, output.
        #[command(flatten)]
        client: ApiClientArgs,
    },
    /// Shows campaign ID (`GET /campaigns/{id}`): status, approval, rows, claims by status, paid total.
    /// Exit status 0, 1 when the API refuses or fails (404: no such campaign), 2 on usage errors.
    Status {
        /// Campaign id (printed by `upload`).
        id: i64,
        /// Where the API is, the token, output.
        #[command(flatten)]
        client: ApiClientArgs,
    },
}
