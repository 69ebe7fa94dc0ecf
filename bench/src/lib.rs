//! `payouts-bench` (run as `payouts bench` or `payouts-bench`): the whole pipeline on this machine, measured end to end from pending claim to confirmed.
//!
//! A throwaway PostgreSQL (or `DATABASE_URL`), the devnet, the indexer (real lake stream) reconciling outcomes
//! and the distributor paying: exactly what `payouts dev` runs. Two shapes:
//! - a backlog (`--claims N`): N claims inserted at once, timed until all are confirmed;
//! - a sustained feed (`--rate R --duration-secs S`): claims arrive at R/s for S seconds; the report gives the
//!   confirmed rate per 10-second window, so "sustained" can be read off.
//!
//! The report names where the time went (queue, broadcast, settle) and, with the block gas limit in force, the
//! devnet's single-token ceiling (chunk compute limit ÷ compute per transfer ÷ block time: nearcore fills chunks by
//! compute, and storage costs about 3× more compute than gas) with the share reached, and the gas price range.
//!
//! A progress bar (on stderr, only when stdout is a terminal) follows the run; every second a sample (fed,
//! confirmed, open, failed) is taken. At the end the text summary is printed and `--report-dir` gets
//! `report.json` (settings, machine, totals, throughput, p50/p95/p99 latency, success share, duplicates on the
//! devnet ledger, the per-second series) and `throughput.svg` (transfers/s per second and the 10-s moving
//! average over time). Any claim paid twice fails the command.
//!
//! Receivers (`--receivers`): a pool of N registered users drawn in turn (default 500: repeat-heavy, so
//! coalescing merges claims) or `distinct` (every claim its own receiver, an airdrop). Claims and transfers
//! are reported apart (claims/s is what users feel, transfers/s the chain's cost: [`receivers::Landed`]).
//!
//! `payouts bench campaign-upload --rows N [--dry-run]` ([`campaign_upload`]) measures `POST /campaigns`
//! instead: the real `payouts api` and `payouts campaign upload` as child processes ([`api_child`]), rows/s
//! and the server's peak memory. `--campaign` makes the backlog one campaign file uploaded the same way,
//! so paying a campaign is measured against the same single-token ceiling.
//!
//! Owns the benchmark only: it drives the other crates through their public APIs and the store's test
//! harness ([`payouts_store::testdb`]), and must never be linked into the production `payouts` binary (which
//! forwards `payouts bench …` to the `payouts-bench` executable beside it). Modules: [`args`] (the command
//! line), [`sampling`] (per-second samples, rates, progress bar), [`report`] (`report.json`), [`chart`]
//! (`throughput.svg`), [`ledger`] (the exactly-once check), [`receivers`] (who the claims pay), [`run`].

pub mod api_child;
pub mod args;
pub mod campaign_upload;
pub mod chart;
mod feed;
mod landing;
pub mod ledger;
pub mod receivers;
pub mod report;
pub mod run;
pub mod sampling;

pub use args::{BenchArgs, WebhookMode};
pub use campaign_upload::CampaignUploadArgs;
pub use receivers::{Landed, Receivers};
pub use report::Report;
pub use run::run;
