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
