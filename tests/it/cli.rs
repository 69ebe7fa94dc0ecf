use std::process::{Command, Output};

use payouts_store::testdb::TestDb;

fn payouts(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payouts"));
    cmd.args(args)
        .current_dir(dir.path())
        .env("RUST_BACKTRACE", "1");
    for (k, _) in std::env::vars() {
        if k.starts_with("PAYOUTS_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One clear line, no panic, no backtrace.
fn assert_one_clean_line(out: &Output) -> String {
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    lines[0].to_string()
}

fn config_file(body: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payouts.toml");
    std::fs::write(&path, body).unwrap();
    let p = path.to_string_lossy().into_owned();
    (dir, p)
}

#[test]
fn migrate_with_unreachable_database_fails_with_one_line_and_no_secret() {
    // Port 1 on loopback: nothing listens there.
    let out = payouts(
        &["migrate"],
        &[("DATABASE_URL", "postgres://app:hunter2@127.0.0.1:1/payouts")],
    );
    assert_eq!(out.status.code(), Some(1));
    let line = assert_one_clean_line(&out);
    assert!(line.contains("cannot connect to the database"), "{line}");
    assert!(
        line.contains("postgres://app:***@127.0.0.1:1/payouts"),
        "{line}"
    );
    assert!(!line.contains("hunter2"), "{line}");
}

#[test]
fn migrate_with_malformed_database_url_is_a_config_error() {
    let out = payouts(
        &["migrate"],
        &[("DATABASE_URL", "mysql://root@localhost/x")],
    );
    assert_eq!(out.status.code(), Some(2));
    let line = assert_one_clean_line(&out);
    assert!(line.contains("database.url"), "{line}");
    assert!(line.contains("postgres://"), "{line}");
}

#[test]
fn missing_database_url_names_the_key() {
    let out = payouts(&["migrate"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let line = assert_one_clean_line(&out);
    assert!(line.contains("database.url: is missing"), "{line}");
}

#[test]
fn invalid_values_and_unknown_keys_name_the_key() {
    let cases = [
        (
            "[database]\nurl = \"postgres://x@h/d\"\nmax_connections = 0\n",
            "database.max_connections",
        ),
        (
            "[database]\nurl = \"postgres://x@h/d\"\nmax_conections = 3\n",
            "database.max_conections",
        ),
        (
            "[database]\nurl = \"postgres://x@h/d\"\n[network]\nrpc_url = \"ftp://x\"\n",
            "network.rpc_url",
        ),
        (
            "[database]\nurl = \"postgres://x@h/d\"\n[api]\nlisten = \"nowhere\"\n",
            "api.listen",
        ),
        (
            "[database]\nurl = \"postgres://x@h/d\"\n[log]\nformat = \"xml\"\n",
            "log.format",
        ),
    ];
    for (body, key) in cases {
        let (_dir, path) = config_file(body);
        let out = payouts(&["--config", &path, "migrate"], &[]);
        assert_eq!(out.status.code(), Some(2), "{key}: {}", stderr(&out));
        let line = assert_one_clean_line(&out);
        assert!(line.contains(key), "expected {key} in: {line}");
    }
}

#[test]
fn env_overrides_the_file() {
    let (_dir, path) = config_file("[database]\nurl = \"postgres://x@h/d\"\nmax_connections = 5\n");
    let out = payouts(
        &["--config", &path, "migrate"],
        &[("PAYOUTS_DATABASE__MAX_CONNECTIONS", "0")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(assert_one_clean_line(&out).contains("database.max_connections"));
}

#[test]
fn missing_config_file_is_reported() {
    let out = payouts(&["--config", "/nonexistent/payouts.toml", "migrate"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(assert_one_clean_line(&out).contains("/nonexistent/payouts.toml"));
}

#[tokio::test]
async fn migrate_applies_then_is_up_to_date_then_reverts() {
    let db = TestDb::empty().await;
    let url = db.url().expose().to_string();
    let env = [("DATABASE_URL", url.as_str())];
    let out = payouts(&["migrate"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied migration"));
    let out = payouts(&["migrate"], &env);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
    let out = payouts(&["migrate", "--revert-all"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("reverted migration"));
}

#[test]
fn a_missing_webhook_secret_is_a_config_error_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("payouts.toml");
    std::fs::write(
        &config,
        "[database]\nurl = \"postgres://x@127.0.0.1:1/x\"\n\n[[webhooks.endpoints]]\nname = \"backend\"\n\
         url = \"https://user:hunter2@hooks.example.com/in\"\nsecret_env = \"NO_SUCH_WEBHOOK_SECRET\"\n\
         events = [\"claim.confirmed\"]\n",
    )
    .unwrap();
    for role in ["webhooks", "run"] {
        let out = payouts(&["--config", &config.to_string_lossy(), role], &[]);
        assert_eq!(out.status.code(), Some(2), "{role}: {}", stderr(&out));
        let line = assert_one_clean_line(&out);
        assert!(line.contains("NO_SUCH_WEBHOOK_SECRET"), "{line}");
        assert!(!line.contains("hunter2"), "{line}");
    }
    // An unknown event type names the key.
    std::fs::write(
        &config,
        "[[webhooks.endpoints]]\nname = \"b\"\nurl = \"https://h.example.com\"\nsecret_env = \"S\"\n\
         events = [\"claim.paid\"]\n",
    )
    .unwrap();
    let out = payouts(&["--config", &config.to_string_lossy(), "webhooks"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(assert_one_clean_line(&out).contains("webhooks.endpoints"));
}

#[test]
fn the_example_config_is_valid() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("payouts.example.toml");
    // Nothing listens on port 1, so a valid config gets as far as connecting (exit 1, not 2).
    let out = payouts(
        &["--config", &example.to_string_lossy(), "migrate"],
        &[("PAYOUTS_DATABASE__URL", "postgres://x@127.0.0.1:1/x")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(assert_one_clean_line(&out).contains("cannot connect"));
}
