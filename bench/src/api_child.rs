//! The real product as child processes: `payouts api` (a server on a given database and devnet) and
//! `payouts campaign upload` (the CLI), both the `payouts` executable beside this one. The server is its own
//! process so its peak memory (`VmHWM`) and CPU time are its own, not the client's or the bench's.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Environment variable the server reads its bench token from (no `PAYOUTS_` prefix: that is config).
const SERVER_TOKEN_ENV: &str = "BENCH_API_TOKEN";

/// The `payouts` executable beside this one.
pub fn payouts_exe() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("locating payouts-bench")?;
    let exe = me
        .parent()
        .context("payouts-bench has no parent directory")?
        .join(format!("payouts{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        exe.is_file(),
        "{} not found: this benchmark runs the real `payouts api` and `payouts campaign upload`; build it \
         with the same profile (`cargo build --release -p near-payouts --bin payouts`)",
        exe.display()
    );
    Ok(exe)
}

/// A running `payouts api`.
pub struct ApiServer {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Its process id.
    pub pid: u32,
    /// The bearer token it accepts (scopes `read`, `send`); never printed.
    token: String,
}

impl ApiServer {
    /// Starts `payouts api` on `db_url` with the chain at `rpc_url`; `api_extra` is appended to `[api]`.
    /// `distributor.register_receivers = true`: the distributor would register unknown receivers, so uploads
    /// skip the per-receiver `storage_balance_of` checks (one RPC call per distinct receiver, measured apart
    /// by the API's ignored `large_dry_run_with_chain_checks` test) and the figures are the upload's own.
    pub async fn start(
        dir: &Path,
        db_url: &str,
        rpc_url: &str,
        api_extra: &str,
    ) -> anyhow::Result<Self> {
        let token = format!("bench-{:032x}", rand::random::<u128>());
        let config = dir.join(format!("api-{:08x}.toml", rand::random::<u32>()));
        let mut f = std::fs::File::create(&config)?;
        write!(
            f,
            "[database]\nurl = {db_url:?}\n\n[network]\nrpc_url = {rpc_url:?}\n\n\
             [log]\nformat = \"json\"\nlevel = \"warn\"\n\n\
             [distributor]\nregister_receivers = true\n\n\
             [api]\nlisten = \"127.0.0.1:0\"\nallowed_tokens = [\"token.devnet\"]\n{api_extra}\n\n\
             [[api.tokens]]\nname = \"bench\"\nscopes = [\"read\", \"send\"]\ntoken_env = \"{SERVER_TOKEN_ENV}\"\n"
        )?;
        drop(f);
        let mut child = Command::new(payouts_exe()?)
            .args(["api", "--config"])
            .arg(&config)
            .env_remove("DATABASE_URL")
            .env_remove("PAYOUTS_LOG__LEVEL")
            .env(SERVER_TOKEN_ENV, &token)
            .env("PAYOUTS_LOG__FORMAT", "json")
            .env("RUST_LOG", "warn,payouts_api::server=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting payouts api")?;
        let pid = child.id().context("payouts api has no pid")?;
        let mut lines = BufReader::new(child.stderr.take().context("no stderr")?).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = tokio::time::timeout(left, lines.next_line())
                .await
                .map_err(|_| anyhow::anyhow!("payouts api did not come up in 60 s: {seen:?}"))??
                .with_context(|| format!("payouts api exited: {seen:?}"))?;
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["fields"]["message"] == "API listening" {
                    if let Some(a) = v["fields"]["addr"].as_str() {
                        break a.to_string();
                    }
                }
            }
            seen.push(line);
        };
        // Keep draining its log so the server never blocks on a full pipe; warnings are shown.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("payouts api: {line}");
            }
        });
        Ok(Self {
            child,
            url: format!("http://{addr}"),
            pid,
            token,
        })
    }

    /// The server's peak resident memory so far, in bytes (`VmHWM`).
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        proc_status_kb(self.pid, "VmHWM:").map(|kb| kb * 1024)
    }

    /// The server's CPU time so far (user + system).
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        proc_cpu(self.pid)
    }

    /// Runs `payouts campaign upload FILE --json ARGS` against this server; the answer, the exit status and
    /// the wall time from start to exit.
    pub async fn upload(&self, file: &Path, args: &[&str]) -> anyhow::Result<Upload> {
        let started = Instant::now();
        let out = Command::new(payouts_exe()?)
            .args(["campaign", "upload"])
            .arg(file)
            .args(["--json", "--api", &self.url])
            .args(args)
            .env("PAYOUTS_API_TOKEN", &self.token)
            .env_remove("PAYOUTS_CONFIG")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .context("running payouts campaign upload")?;
        let elapsed = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let answer = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
        Ok(Upload {
            code: out.status.code().unwrap_or(-1),
            elapsed,
            answer,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// SIGTERM, then waits 30 s at most (then kills it).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        Ok(())
    }
}

/// One CLI upload.
#[derive(Debug)]
pub struct Upload {
    /// Exit status of `payouts campaign upload`.
    pub code: i32,
    /// Start of the CLI → its exit.
    pub elapsed: Duration,
    /// The API's JSON answer (`Null` when there was none).
    pub answer: serde_json::Value,
    /// What the CLI printed on stderr.
    pub stderr: String,
}

fn proc_status_kb(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {key} in /proc/{pid}/status"))
}

/// utime + stime of `pid` (`/proc/<pid>/stat`, in clock ticks of 1/100 s: Linux's USER_HZ).
fn proc_cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count from the closing parenthesis.
    let rest = stat.rsplit_once(')').context("bad /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11)
        .zip(fields.get(12))
        .and_then(|(u, s)| Some(u.parse::<u64>().ok()? + s.parse::<u64>().ok()?))
        .context("bad /proc stat")?;
    Ok(Duration::from_millis(ticks * 10))
}
