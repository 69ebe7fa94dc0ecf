//! The `payouts` binary: parses the command line, loads the configuration, runs one role.
//!
//! Error policy at this edge: a configuration problem (or a `payouts campaign` usage error) prints one line
//! naming the key and exits 2;
//! any other failure prints one `error: …` line (its causes joined, never a backtrace) and exits 1.

mod bench;
mod campaign;
mod cli;
mod config;
mod dev;
mod incidents;
mod logging;
mod progress;
mod roles;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use payouts_store::migrate::{run_migrations, Direction};

use crate::cli::{Cli, Command};
use crate::config::{Config, ConfigError};

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<ConfigError>() || err.is::<campaign::UsageError>() => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate { revert_all } => {
            let config = Config::load(cli.config.as_deref())?;
            logging::init(&config.log);
            config.log_summary();
            let direction = if revert_all {
                Direction::DownAll
            } else {
                Direction::Up
            };
            let db = config.database()?;
            let done = run_migrations(db, direction)
                .await
                .with_context(|| format!("migrating {}", db.url))?;
            let verb = if revert_all { "reverted" } else { "applied" };
            if done.is_empty() {
                println!("database is up to date ({})", db.url);
            }
            for version in done {
                println!("{verb} migration {version}");
            }
            Ok(())
        }
        Command::Indexer => {
            let config = Config::load(cli.config.as_deref())?;
            logging::init(&config.log);
            config.log_summary();
            roles::indexer(config).await
        }
        Command::Devnet => {
            let config = Config::load(cli.config.as_deref())?;
            logging::init(&config.log);
            roles::devnet(config).await
        }
        Command::Replay {
            from,
            to,
            dry_run,
            wait_timeout_secs,
        } => {
            let mut config = Config::load(cli.config.as_deref())?;
            if wait_timeout_secs.is_some() {
                config.indexer.replay_wait_timeout_secs = wait_timeout_secs;
            }
            logging::init(&config.log);
            roles::replay_range(config, from, to, dry_run).await
        }
        Command::Distributor => {
            let config = Config::load(cli.config.as_deref())?;
            logging::init(&config.log);
            config.log_summary();
            roles::distributor(config).await
        }
        Command::Api => {
            let config = Config::load(cli.config.as_deref())?;
            logging::init(&config.log);
            config.log_summary();
            roles::api(config).await
        }
        Command::Webhooks => {
            let config = Config::load(cli.config.as_deref())?;
            logging::init(&config.log);
            config.log_summary();
            roles::webhooks(config).await
        }
        Command::Dev(args) => {
            let config = Config::load(cli.config.as_deref())?;
            logging::init(&config.log);
            dev::dev(config, args).await
        }
        Command::Run => {
            let config = Config::load(cli.config.as_deref())?;
            logging::init(&config.log);
            config.log_summary();
            roles::run(config).await
        }
        Command::Incidents { action } => {
            let config = Config::load(cli.config.as_deref())?;
            logging::init(&config.log);
            incidents::run(config, action).await
        }
        // A client of the running API: no logging set up, the summary is the output.
        Command::Campaign { action } => campaign::run(action, cli.config.as_deref()).await,
        Command::Bench { args } => {
            let config = Config::load(cli.config.as_deref())?;
            bench::forward(args, &config.log)
        }
    }
}
