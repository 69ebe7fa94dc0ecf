//! `payouts bench …` forwards to the `payouts-bench` executable beside this one (crate `bench/`), so the
//! production binary links neither the benchmark's chart and progress-bar crates nor the store's test
//! database harness.
//!
//! Under `cargo run` (Cargo sets `CARGO` and `CARGO_MANIFEST_DIR` for the program it runs) it first builds
//! `payouts-bench` with this executable's profile and target directory (`cargo build -p payouts-bench`, a
//! no-op when fresh), so `cargo run --release -- bench …` keeps working. Anywhere else it only looks next to
//! [`std::env::current_exe`] and, when the executable is missing, says how to build it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use crate::config::{LogConfig, LogFormat};

/// The benchmark's executable name.
const BENCH_EXE: &str = "payouts-bench";

/// Runs `payouts-bench ARGS` in place of this process (unix `exec`; elsewhere as a child, exiting with its
/// status). Returns only on failure.
pub fn forward(args: Vec<OsString>, log: &LogConfig) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the payouts executable")?;
    let dir = exe
        .parent()
        .context("the payouts executable has no parent directory")?;
    let bench = dir.join(format!("{BENCH_EXE}{}", std::env::consts::EXE_SUFFIX));
    if let Some(manifest) = cargo_run_manifest() {
        build_with_cargo(&manifest, dir)?;
    }
    anyhow::ensure!(
        bench.is_file(),
        "{} not found: `payouts bench` runs the benchmark's own executable; build it with \
         `cargo build --release -p payouts-bench` (or run `cargo run --release -p payouts-bench -- …`)",
        bench.display()
    );
    let mut cmd = Command::new(&bench);
    cmd.args(args);
    // The bench reads its log settings from these (RUST_LOG still wins); the configuration's are the default.
    if std::env::var_os("PAYOUTS_LOG__LEVEL").is_none() {
        cmd.env("PAYOUTS_LOG__LEVEL", &log.level);
    }
    if std::env::var_os("PAYOUTS_LOG__FORMAT").is_none() {
        let format = match log.format {
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        };
        cmd.env("PAYOUTS_LOG__FORMAT", format);
    }
    exec(cmd, &bench)
}

#[cfg(unix)]
fn exec(mut cmd: Command, bench: &Path) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let err = cmd.exec();
    Err(err).with_context(|| format!("running {}", bench.display()))
}

#[cfg(not(unix))]
fn exec(mut cmd: Command, bench: &Path) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("running {}", bench.display()))?;
    std::process::exit(status.code().unwrap_or(1));
}

/// The workspace manifest when this process was started by `cargo run` from this workspace.
fn cargo_run_manifest() -> Option<PathBuf> {
    std::env::var_os("CARGO")?;
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    root.join("bench/Cargo.toml")
        .is_file()
        .then(|| root.join("Cargo.toml"))
}

/// `cargo build -p payouts-bench` into the target directory and profile `exe_dir` belongs to
/// (`<target>/<profile>/` or `<target>/<triple>/<profile>/`).
fn build_with_cargo(manifest: &Path, exe_dir: &Path) -> anyhow::Result<()> {
    let profile_dir = exe_dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("the payouts executable's directory has no name")?;
    let mut target_dir = exe_dir.parent().context("no target directory")?;
    let mut triple = None;
    // Cargo marks the target directory's root with CACHEDIR.TAG; one level further up means `--target`.
    if !target_dir.join("CACHEDIR.TAG").is_file() {
        if let Some(up) = target_dir
            .parent()
            .filter(|d| d.join("CACHEDIR.TAG").is_file())
        {
            triple = target_dir.file_name().map(OsString::from);
            target_dir = up;
        }
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    // What `cargo run` set for this program describes near-payouts, not the build: inherited, it would make
    // build scripts that watch these variables (ring: CARGO_MANIFEST_DIR, CARGO_PKG_NAME) rerun, and the
    // outer and inner builds rebuild each other's dependencies every time.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || matches!(
                key,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE" | "OUT_DIR"
            )
        {
            cmd.env_remove(key);
        }
    }
    cmd.arg("build").arg("--manifest-path").arg(manifest);
    cmd.args(["-p", BENCH_EXE, "--bin", BENCH_EXE]);
    match profile_dir {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    cmd.arg("--target-dir").arg(target_dir);
    if let Some(t) = triple {
        cmd.arg("--target").arg(t);
    }
    eprintln!("payouts bench: building {BENCH_EXE} first (under cargo run)");
    let status = cmd
        .status()
        .context("running cargo to build payouts-bench")?;
    anyhow::ensure!(
        status.success(),
        "cargo build -p payouts-bench failed ({status})"
    );
    Ok(())
}
