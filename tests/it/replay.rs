use std::process::Command;

use payouts_store::testdb::TestDb;

fn fixture_dir() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lake-mainnet");
    assert!(dir.is_dir(), "fixture missing at {}", dir.display());
    dir.to_string_lossy().into_owned()
}

fn replay(config: &str, url: &str, extra: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payouts"));
    cmd.args([
        "--config", config, "replay", "--from", "93085141", "--to", "93085141",
    ])
    .args(extra);
    for (k, _) in std::env::vars() {
        if k.starts_with("PAYOUTS_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.env("DATABASE_URL", url).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[tokio::test]
async fn replaying_the_mainnet_fixture_is_idempotent() {
    let db = TestDb::empty().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("payouts.toml");
    std::fs::write(
        &config,
        format!(
            r#"
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
            fixture_dir()
        ),
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    let url = db.url().expose().to_string();

    let (ok, out, err) = replay(&config, &url, &["--dry-run"]);
    assert!(ok, "{err}");
    assert!(out.contains("would insert 2 new claims"), "{out}");
    let (ok, out, err) = replay(&config, &url, &[]);
    assert!(ok, "{err}");
    assert!(
        out.contains("1 blocks") && out.contains("inserted 2 new claims"),
        "{out}"
    );
    let (ok, out, err) = replay(&config, &url, &[]);
    assert!(ok, "{err}");
    assert!(out.contains("inserted 0 new claims"), "{out}");
}
