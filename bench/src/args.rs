//! `payouts bench`'s command line.

use std::path::PathBuf;

use crate::receivers::Receivers;

/// What to run.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Lift the devnet's per-block gas limit (throughput of the software, not of the chain).
    #[arg(long)]
    pub lift_gas_limit: bool,
    /// Backlog mode: claims inserted at once.
    #[arg(long, default_value_t = 50_000)]
    pub claims: u64,
    /// Sustained mode: claims per second fed for `--duration-secs`.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Sustained mode: how long to feed.
    #[arg(long, default_value_t = 600)]
    pub duration_secs: u64,
    /// Treasury keys (nonce lanes) used, 1..=8.
    #[arg(long, default_value_t = 8)]
    pub keys: usize,
    /// Devnet block time (default: mainnet's 600 ms).
    #[arg(long, default_value_t = 600)]
    pub block_time_ms: u64,
    /// Transactions in flight per key.
    #[arg(long, default_value_t = 32)]
    pub max_in_flight: usize,
    /// `ft_transfer` actions per transaction (batch size), at most 100. With the chunk limit in force, a
    /// receipt starts while the chunk's compute is below the limit (nearcore's rule; the last one may
    /// overshoot), so full batches fill chunks as well as smaller ones.
    #[arg(long, default_value_t = 100)]
    pub per_tx: usize,
    /// Also deliver webhooks of every event type to a local receiver that answers `ok` (200) or `hang`s
    /// (never answers): the distributor's throughput must not depend on it.
    #[arg(long, value_enum)]
    pub webhook: Option<WebhookMode>,
    /// Who the claims pay: a pool of N registered users drawn in turn (repeat-heavy) or `distinct` (each
    /// claim its own receiver).
    #[arg(long, default_value = "500")]
    pub receivers: Receivers,
    /// `distributor.coalesce`: merge claims of one receiver pending together into one transfer.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub coalesce: bool,
    /// Backlog mode: the `--claims` claims come as one campaign file, uploaded with `payouts campaign upload`
    /// to a `payouts api` on the same database (the `payouts` executable beside this one), instead of
    /// being inserted directly: paying a campaign against the same single-token ceiling.
    #[arg(long, conflicts_with = "rate")]
    pub campaign: bool,
    /// Where `report.json` and `throughput.svg` go (created if missing).
    #[arg(long, default_value = "bench-report")]
    pub report_dir: PathBuf,
}

/// How the bench's webhook receiver behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WebhookMode {
    /// Answers 200 at once.
    Ok,
    /// Never answers (each request times out).
    Hang,
}
