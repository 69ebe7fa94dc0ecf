//! A throwaway PostgreSQL cluster started with `initdb` + `pg_ctl` on a free loopback port.
//!
//! Connections need the superuser's password (SCRAM-SHA-256, TCP and socket alike): a random one, kept in
//! a file only the cluster's owner can read ([`PgCluster::password_file`]), so another local user cannot
//! connect and insert claims that `payouts dev` would pay.
//!
//! Used by every crate's tests and by `payouts dev`. When this process runs as root (initdb refuses to),
//! the cluster runs as the `postgres` system user in a directory it owns. A small watchdog process stops
//! the cluster and removes its files when this process exits, however it exits (panic, abort, kill -9).

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use crate::url::DatabaseUrl;

/// A file whose presence tells the watchdog to leave the data in place.
const KEEP_MARKER: &str = "KEEP";

/// Why a cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No `initdb` on PATH nor under `/usr/lib/postgresql/*/bin`.
    #[error(
        "PostgreSQL server binaries not found (initdb, pg_ctl): install them, e.g. `apt-get update && apt-get install -y postgresql`, or set DATABASE_URL"
    )]
    NotInstalled,
    /// Running as root but there is no `postgres` user to run the cluster as.
    #[error("running as root and no `postgres` system user exists to run the cluster as (initdb refuses root)")]
    NoPostgresUser,
    /// A step failed; the message holds its output.
    #[error("{step} failed: {detail}")]
    Step {
        /// what was being done
        step: &'static str,
        /// stderr / log tail
        detail: String,
    },
    /// Filesystem or process error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A running throwaway cluster. Stopped and deleted on drop unless [`PgCluster::keep`] was called.
pub struct PgCluster {
    data_dir: PathBuf,
    root_dir: PathBuf,
    port: u16,
    bin_dir: PathBuf,
    run_as_postgres: bool,
    keep: bool,
    durable: bool,
    password: String,
    watchdog: Mutex<Option<Child>>,
}

impl std::fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCluster")
            .field("data_dir", &self.data_dir)
            .field("port", &self.port)
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}

/// Name of the password file in the cluster's directory.
const PASSWORD_FILE: &str = "pwfile";

/// 32 random hex characters from the kernel's generator.
fn random_password() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `secret` to a new file readable by its owner only.
pub fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(secret.as_bytes())
}

/// Finds the directory holding `initdb` and `pg_ctl`: `$POSTGRES_BIN_DIR` when set (only there), else `PATH`,
/// else the newest `/usr/lib/postgresql/*/bin`.
pub fn find_pg_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("POSTGRES_BIN_DIR") {
        let dir = PathBuf::from(dir);
        return (dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()).then_some(dir);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    for dir in on_path {
        if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl PgCluster {
    /// Starts a new cluster in a fresh temporary directory. Blocking: takes a second or two.
    /// Tuned for tests: no fsync, asynchronous commit (a crash of the server may lose the last commits).
    pub fn start() -> Result<Self, ClusterError> {
        Self::start_with(false)
    }

    /// [`PgCluster::start`] with the durability of a production server (fsync, synchronous commit), for tests
    /// that crash the server and check that nothing committed is lost.
    pub fn start_durable() -> Result<Self, ClusterError> {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Result<Self, ClusterError> {
        let bin_dir = find_pg_bin_dir().ok_or(ClusterError::NotInstalled)?;
        let run_as_postgres = is_root();
        if run_as_postgres && !user_exists("postgres") {
            return Err(ClusterError::NoPostgresUser);
        }
        let root_dir = tempfile::Builder::new()
            .prefix("payouts-pg-")
            .tempdir()?
            .keep();
        let mut cluster = PgCluster {
            data_dir: root_dir.join("data"),
            root_dir,
            port: 0,
            bin_dir,
            run_as_postgres,
            keep: false,
            durable,
            password: random_password()?,
            watchdog: Mutex::new(None),
        };
        write_private(&cluster.root_dir.join(PASSWORD_FILE), &cluster.password)?;
        // The watchdog first, so even a failure below leaves nothing behind once we exit.
        cluster.spawn_watchdog()?;
        if run_as_postgres {
            cluster.run(
                "chown",
                Command::new("chown")
                    .arg("-R")
                    .arg("postgres:postgres")
                    .arg(&cluster.root_dir),
            )?;
        }
        let mut initdb = cluster.pg_command("initdb");
        initdb.arg("-D").arg(&cluster.data_dir).args([
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        initdb.arg(format!(
            "--pwfile={}",
            cluster.root_dir.join(PASSWORD_FILE).display()
        ));
        cluster.run("initdb", &mut initdb)?;
        // A port can be taken between probing and binding: try a few.
        let mut last_err = None;
        for _ in 0..5 {
            cluster.port = free_port()?;
            match cluster.pg_ctl_start() {
                Ok(()) => return Ok(cluster),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or(ClusterError::Step {
            step: "pg_ctl start",
            detail: "no free port".into(),
        }))
    }

    /// Leaves the data directory in place when stopped, for inspection (the server still stops).
    pub fn keep(&mut self) -> std::io::Result<()> {
        self.keep = true;
        std::fs::write(
            self.root_dir.join(KEEP_MARKER),
            b"kept by PgCluster::keep\n",
        )
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the cluster's files live.
    pub fn dir(&self) -> &Path {
        &self.root_dir
    }

    /// The file holding the superuser's password (mode 0600).
    pub fn password_file(&self) -> PathBuf {
        self.root_dir.join(PASSWORD_FILE)
    }

    /// URL of database `db` on this cluster, as the `postgres` superuser (password included; it shows as
    /// `***`).
    pub fn url(&self, db: &str) -> DatabaseUrl {
        DatabaseUrl::parse(&format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        ))
        .unwrap_or_else(|_| unreachable!("the URL is built from valid parts"))
    }

    fn pg_command(&self, tool: &str) -> Command {
        let exe = self.bin_dir.join(tool);
        if self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, step: &'static str, cmd: &mut Command) -> Result<(), ClusterError> {
        let out = cmd
            .stdin(Stdio::null())
            .current_dir(&self.root_dir)
            .output()?;
        if out.status.success() {
            return Ok(());
        }
        let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if detail.is_empty() {
            detail = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        Err(ClusterError::Step { step, detail })
    }

    fn pg_ctl_start(&self) -> Result<(), ClusterError> {
        let log = self.root_dir.join("postgres.log");
        let speed = if self.durable {
            ""
        } else {
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        };
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 {speed}-c max_connections=300 -c shared_buffers=64MB",
            self.port,
            self.root_dir.display()
        );
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &opts, "start"]);
        self.run("pg_ctl start", &mut cmd).map_err(|e| match e {
            ClusterError::Step { step, detail } => {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(5).collect();
                ClusterError::Step {
                    step,
                    detail: format!("{detail}; log: {}", tail.join(" | ")),
                }
            }
            other => other,
        })
    }

    fn spawn_watchdog(&mut self) -> Result<(), ClusterError> {
        let pg_ctl = self.bin_dir.join("pg_ctl");
        let stop = if self.run_as_postgres {
            format!("runuser -u postgres -- '{}'", pg_ctl.display())
        } else {
            format!("'{}'", pg_ctl.display())
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             [ -f '{data}/postmaster.pid' ] && {stop} -D '{data}' stop -m immediate -w -t 20; \
             [ -f '{root}/{KEEP_MARKER}' ] || rm -rf '{root}'",
            pid = std::process::id(),
            data = self.data_dir.display(),
            root = self.root_dir.display(),
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.watchdog = Mutex::new(Some(child));
        Ok(())
    }

    /// Stops the server and starts it again on the same port (clients see their connections drop).
    /// `crash`: `immediate` mode, as if the server died (recovery from WAL at start); else a clean `fast` stop.
    pub fn restart(&self, crash: bool) -> Result<(), ClusterError> {
        let mode = if crash { "immediate" } else { "fast" };
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["stop", "-m", mode, "-w", "-t", "60"]);
        self.run("pg_ctl stop", &mut cmd)?;
        self.pg_ctl_start()
    }

    /// Stops the server now (fast shutdown) and removes its files unless kept.
    pub fn stop(&mut self) {
        if self.data_dir.join("postmaster.pid").exists() {
            let mut cmd = self.pg_command("pg_ctl");
            cmd.arg("-D")
                .arg(&self.data_dir)
                .args(["stop", "-m", "immediate", "-w", "-t", "20"]);
            if let Err(e) = self.run("pg_ctl stop", &mut cmd) {
                tracing::warn!(error = %e, "stopping the throwaway cluster failed");
            }
        }
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.root_dir);
        }
        if let Ok(mut w) = self.watchdog.lock() {
            if let Some(mut child) = w.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn user_exists(name: &str) -> bool {
    std::fs::read_to_string("/etc/passwd")
        .map(|p| p.lines().any(|l| l.split(':').next() == Some(name)))
        .unwrap_or(false)
}
