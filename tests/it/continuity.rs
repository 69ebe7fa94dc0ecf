//! The `payouts` binary on a `dir` source of real mainnet lake blocks (re-numbered and re-linked), as an
//! operator sees it: a hole in the chain, a truncated or missing shard file, `--to` past the source's last
//! block. Each ends in a clear log line or a non-zero exit with the reason, never a silent spin.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use payouts_store::testdb::TestDb;

use crate::child::lines;
use crate::lakechain::write_chain;

const B: u64 = 140_000_000;

fn config(dir: &Path, lake: &Path) -> String {
    let config = dir.join("payouts.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[log]
format = "text"
level = "info"

[indexer]
start_block_height = {B}
replay_max_attempts = 3
source_retry_initial_ms = 200
source_retry_max_ms = 1000

[indexer.source]
kind = "dir"
path = "{}"

[[indexer.rules]]
name = "sweat"
contract = "token.sweat"
standard = "nep141"
event = "ft_transfer"
receiver_field = "new_owner_id"
amount_field = "amount"
token = "token.sweat"
"#,
            lake.display()
        ),
    )
    .unwrap();
    config.to_string_lossy().into_owned()
}

fn payouts(config: &str, url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payouts"));
    cmd.args(["--config", config]).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("PAYOUTS_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("DATABASE_URL", url).env("NO_COLOR", "1");
    cmd
}

fn replay(config: &str, url: &str, args: &[&str]) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let out = payouts(config, url, &[&["replay"], args].concat())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text, started.elapsed())
}

fn truncate(path: &Path) {
    let text = std::fs::read(path).unwrap();
    std::fs::write(path, &text[..text.len() / 2]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_exits_non_zero_with_the_reason() {
    let db = TestDb::empty().await;
    let url = db.url().expose().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    write_chain(&lake, B - 1, &[B, B + 1]);
    // B+3's parent B+2 is missing.
    write_chain(&lake, B + 2, &[B + 3]);
    let config = config(tmp.path(), &lake);
    let (from, to) = (B.to_string(), (B + 1).to_string());

    let (code, text, _) = replay(&config, &url, &["--from", &from, "--to", &to]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("inserted 4 new claims"), "{text}");

    // A hole: refused, naming the broken link.
    let (code, text, _) = replay(
        &config,
        &url,
        &["--from", &from, "--to", &(B + 3).to_string()],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("chain broken")
            && text.contains(&format!("block {}", B + 3))
            && text.contains(&format!("before it in the source is {}", B + 1)),
        "{text}"
    );

    // A truncated shard file: warn lines with the key, then a non-zero exit with the reason after 3
    // fetches (200 + 400 ms of back-off), not a spin.
    let bad = lake.join(format!("{:012}/shard_3.json", B + 1));
    let good = std::fs::read(&bad).unwrap();
    truncate(&bad);
    let (code, text, took) = replay(&config, &url, &["--from", &from, "--to", &to]);
    assert_eq!(code, Some(1), "{text}");
    let key = format!("{:012}/shard_3.json", B + 1);
    assert!(
        text.contains("WARN") && text.contains(&key) && text.contains("gave up after 3 attempts"),
        "{text}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
    // Missing instead of truncated: the same, with the I/O error.
    std::fs::remove_file(&bad).unwrap();
    let (code, text, _) = replay(&config, &url, &["--from", &from, "--to", &to]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&key) && text.contains("No such file"),
        "{text}"
    );
    std::fs::write(&bad, good).unwrap();

    // `--to` past the source's last block (B+1, once the block after the hole is gone): fails after the
    // wait timeout, saying what it waited for.
    std::fs::remove_dir_all(lake.join(format!("{:012}", B + 3))).unwrap();
    let (code, text, took) = replay(
        &config,
        &url,
        &[
            "--from",
            &from,
            "--to",
            &(B + 50).to_string(),
            "--wait-timeout-secs",
            "2",
        ],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("no block {}..={}", B + 2, B + 50))
            && text.contains(&format!("the source's last block: {}", B + 1)),
        "{text}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_indexer_logs_a_missing_shard_and_a_chain_gap() {
    let db = TestDb::empty().await;
    let url = db.url().expose().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    write_chain(&lake, B - 1, &[B, B + 1]);
    let bad = lake.join(format!("{:012}/shard_3.json", B + 1));
    let good = std::fs::read(&bad).unwrap();
    std::fs::remove_file(&bad).unwrap();
    let config = config(tmp.path(), &lake);
    let mut child = payouts(&config, &url, &["indexer"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let log = lines(child.stderr.take().unwrap());
    let wait_for = |what: &str, within: Duration, hit: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match log.recv_timeout(left) {
                Ok(line) if hit(&line) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("no {what} within {within:?}; log:\n{}", seen.join("\n")),
            }
        }
    };
    let key = format!("{:012}/shard_3.json", B + 1);
    // Within 5 s of start-up (migrations included), a warn line naming the object.
    let line = wait_for("warn line naming the shard", Duration::from_secs(5), &|l| {
        l.contains("WARN") && l.contains(&key)
    });
    assert!(line.contains("No such file"), "{line}");

    // The file comes back; then a hole after B+1: an error line naming both blocks.
    std::fs::write(&bad, good).unwrap();
    write_chain(&lake, B + 2, &[B + 3]);
    let line = wait_for("chain gap error", Duration::from_secs(30), &|l| {
        l.contains("ERROR") && l.contains("chain gap")
    });
    assert!(
        line.contains(&format!("last_height={}", B + 1))
            && line.contains(&format!("next_height={}", B + 3)),
        "{line}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
