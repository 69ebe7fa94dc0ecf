//! `payouts dev`: the whole product on this machine in one command — a throwaway PostgreSQL, the devnet with
//! its load generator of user `claim` calls, and `payouts run` (indexer, distributor, API/dashboard, webhook
//! delivery) against them. Ctrl-C stops everything and removes the temporary data unless `--keep`.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use anyhow::Context;
use payouts_api::config::{Scope, TokenConfig};
use payouts_devnet::Devnet;
use payouts_indexer::rules::RuleConfig;
use payouts_indexer::IndexerConfig;
use payouts_store::cluster::{find_pg_bin_dir, PgCluster};
use payouts_store::DbConfig;

use crate::config::{Config, ConfigError};
use crate::roles::{prepare_database, run_all, shutdown_on_signals};

/// `payouts dev` options.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Keep the database cluster, key files and API token after exit (their paths are printed).
    #[arg(long)]
    pub keep: bool,
    /// Address of the API and dashboard (default `[api] listen`, 127.0.0.1:8080; a free port when taken).
    #[arg(long)]
    pub api_listen: Option<SocketAddr>,
    /// Address of the devnet's JSON-RPC (default `[devnet] listen`, 127.0.0.1:3030; a free port when taken).
    #[arg(long)]
    pub rpc_listen: Option<SocketAddr>,
    /// User `claim` calls per second made by the devnet's load generator (0: none).
    #[arg(long, default_value_t = 20.0)]
    pub claims_per_second: f64,
    /// Treasury keys (nonce lanes) the distributor uses, 1..=8.
    #[arg(long, default_value_t = 4)]
    pub keys: usize,
}

const INSTALL_HINT: &str = "payouts dev needs the PostgreSQL server binaries (initdb, pg_ctl) and found none on PATH \
     or under /usr/lib/postgresql/*/bin. Install them: `apt-get update && apt-get install -y postgresql` \
     (Debian/Ubuntu), `dnf install postgresql-server` (Fedora), `brew install postgresql@16` (macOS); or run \
     `payouts run --config payouts.toml` against a PostgreSQL of your own";

/// `addr` when it can be bound now, else the same host with port 0 (the server then binds a free port).
fn usable(addr: SocketAddr) -> SocketAddr {
    match TcpListener::bind(addr) {
        Ok(_) => addr,
        Err(_) => SocketAddr::new(addr.ip(), 0),
    }
}

/// The demo rule: the devnet's claims contract pays its `claim` events in its token.
fn devnet_rule() -> RuleConfig {
    RuleConfig {
        name: "claims".into(),
        contract: "claims.devnet".into(),
        standard: "claims".into(),
        event: "claim".into(),
        receiver_field: "account_id".into(),
        amount_field: Some("amount".into()),
        fixed_amount: None,
        token: "token.devnet".into(),
        memo: None,
    }
}

/// Runs `payouts dev` until Ctrl-C / SIGTERM.
pub async fn dev(mut config: Config, args: DevArgs) -> anyhow::Result<()> {
    anyhow::ensure!((1..=8).contains(&args.keys), "--keys: 1 to 8");
    anyhow::ensure!(
        args.claims_per_second.is_finite() && args.claims_per_second >= 0.0,
        "--claims-per-second: a number ≥ 0"
    );
    if find_pg_bin_dir().is_none() {
        return Err(ConfigError(INSTALL_HINT.into()).into());
    }
    let shutdown = shutdown_on_signals();
    let work = tempfile::Builder::new().prefix("payouts-dev-").tempdir()?;
    let work_dir = work.path().to_path_buf();

    eprintln!("payouts dev: starting PostgreSQL …");
    let mut cluster = tokio::task::spawn_blocking(PgCluster::start)
        .await?
        .context("starting a throwaway PostgreSQL")?;
    if args.keep {
        cluster.keep()?;
    }

    let mut dcfg = config.devnet.clone();
    // Port 0 stays 0: the devnet binds a free port itself (its URL is read back below).
    dcfg.listen = usable(args.rpc_listen.unwrap_or(dcfg.listen));
    dcfg.key_dir = Some(work_dir.join("keys"));
    dcfg.load.claims_per_second = args.claims_per_second;
    let devnet = Devnet::start(dcfg).await.context("starting the devnet")?;
    let rpc = devnet.rpc_url();

    // Everything the parts need, pointed at the local database and chain.
    let token_file: PathBuf = work_dir.join("api-token");
    let token = format!(
        "{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    );
    write_private(&token_file, &token)?;
    config.set_database(DbConfig::new(cluster.url("postgres")));
    config.network.chain_id = "devnet".into();
    config.network.set_single(rpc.clone());
    config.indexer = IndexerConfig {
        start_block_height: Some(1),
        rules: if config.indexer.rules.is_empty() {
            vec![devnet_rule()]
        } else {
            config.indexer.rules.clone()
        },
        ..IndexerConfig::fastnear(rpc.clone())
    };
    config.distributor.key_files = devnet.treasury_key_files()[..args.keys].to_vec();
    config.distributor.keys_env = None;
    // Half of the devnet's users have no token storage: register them, so every claim can be paid.
    config.distributor.register_receivers = true;
    // Port 0 stays 0: the API binds a free port itself, and the banner shows the one it got.
    config.api.listen = usable(args.api_listen.unwrap_or(config.api.listen));
    if config.api.allowed_tokens.is_empty() {
        config.api.allowed_tokens = vec!["token.devnet".into()];
    }
    config.api.tokens = vec![TokenConfig {
        name: "dev".into(),
        scopes: vec![Scope::Read, Scope::Send, Scope::Admin],
        token_env: None,
        token_file: Some(token_file.clone()),
    }];
    let pool = prepare_database(&config).await?;

    // The cluster needs its superuser's password (SCRAM); a copy sits in the work dir, readable by this
    // user only, for psql: `PGPASSWORD=$(cat <file>) psql -h 127.0.0.1 -p <port> -U postgres`.
    let password_file = work_dir.join("db-password");
    let password = std::fs::read_to_string(cluster.password_file())
        .context("reading the throwaway cluster's password")?;
    payouts_store::cluster::write_private(&password_file, password.trim())?;
    let database = format!(
        "postgres://postgres@127.0.0.1:{}/postgres (password in {})",
        cluster.port(),
        password_file.display()
    );
    let key_files = config
        .distributor
        .key_files
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let token_path = token_file.display().to_string();
    let work_path = work_dir.display().to_string();
    let banner = move |api: SocketAddr| {
        let lines = [
            "payouts dev is running (Ctrl-C stops it)".to_string(),
            format!("  dashboard:   http://{api}/"),
            format!("  api:         http://{api}/status  (OpenAPI: /openapi.json)"),
            format!("  rpc:         {rpc}"),
            format!("  database:    {database}"),
            format!("  api token:   {token_path} (scopes read, send, admin)"),
            format!("  key files:   {key_files}"),
            format!("  work dir:    {work_path}"),
        ];
        let mut out = std::io::stdout().lock();
        for line in &lines {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    };
    let result = run_all(&config, pool, shutdown, banner).await;

    eprintln!("payouts dev: stopping …");
    devnet.shutdown().await;
    drop(cluster);
    if args.keep {
        let kept = work.keep();
        eprintln!("payouts dev: kept {}", kept.display());
    } else {
        drop(work);
    }
    result
}

/// Writes a secret readable by this user only.
fn write_private(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(secret.as_bytes())
}
