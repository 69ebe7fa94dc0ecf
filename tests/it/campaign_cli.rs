//! `payouts campaign upload|status` against the real binaries: `payouts api` on the devnet and a test
//! database, the CLI as a child process. A dry run prints the row errors and writes nothing; the real upload
//! stores the campaign; the same file again is the same campaign with nothing new; a changed file under the
//! same name is refused with the API's 409 message; the token never shows in any output.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use payouts_devnet::Devnet;
use payouts_store::campaigns::campaign_by_name;
use payouts_store::claims::count_by_status;
use payouts_store::testdb::TestDb;
use payouts_store::ClaimStatus;

use crate::child::{api_addr, lines, stop};

const TOKEN: &str = "campaign-cli-test-token-0123456789";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `payouts ARGS` with the token in `PAYOUTS_API_TOKEN` (unless `token_env` is false), 60 s at most.
async fn payouts(args: &[&str], token_env: bool) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_payouts"));
    cmd.args(args)
        .env_remove("PAYOUTS_API_TOKEN")
        .env_remove("PAYOUTS_CONFIG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if token_env {
        cmd.env("PAYOUTS_API_TOKEN", TOKEN);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the CLI finished within 60 s")
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN),
        "the token was printed: {}{}",
        run.stdout,
        run.stderr
    );
    run
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_upload_dry_run_store_again_and_conflict() {
    let (devnet, dir) = Devnet::start_for_tests(|_| {}).await.unwrap();
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let server_config = dir.path().join("api.toml");
    let common = format!(
        "[database]\nurl = {db:?}\n\n[network]\nrpc_url = {rpc:?}\n\n[log]\nformat = \"json\"\nlevel = \"warn\"\n\n",
        db = db.url().expose(),
        rpc = devnet.rpc_url(),
    );
    let tokens = "[[api.tokens]]\nname = \"ops\"\nscopes = [\"read\", \"send\"]\ntoken_env = \"CAMPAIGN_CLI_TEST_TOKEN\"\n";
    std::fs::write(
        &server_config,
        format!("{common}[api]\nlisten = \"127.0.0.1:0\"\nallowed_tokens = [\"token.devnet\"]\n\n{tokens}"),
    )
    .unwrap();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_payouts"))
        .args(["api", "--config"])
        .arg(&server_config)
        .env_remove("DATABASE_URL")
        .env("CAMPAIGN_CLI_TEST_TOKEN", TOKEN)
        .env("RUST_LOG", "warn,payouts_api::server=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = lines(server.stderr.take().unwrap());
    let mut seen = Vec::new();
    let addr = api_addr(&mut server, &log, &mut seen);
    let api = format!("http://{addr}");
    // The client's configuration: only where the API listens (the default URL), nothing secret.
    let client_config = dir.path().join("client.toml");
    std::fs::write(&client_config, format!("[api]\nlisten = {addr:?}\n")).unwrap();
    let client_config = client_config.display().to_string();

    let good = "receiver_id,amount,amount_tokens,memo,external_id\n\
                user-0.devnet,1000,,first,a-1\n\
                user-2.devnet,,0.5,,a-2\n\
                user-4.devnet,3000,,,a-3\n";
    let bad = format!("{good}Not An Account!,5,,,a-4\nuser-6.devnet,lots,,,a-5\n");
    let file = write(&dir.path().join("airdrop.csv"), &bad);

    // Dry run with row errors: both listed, exit 1 (the upload would be refused), nothing written.
    let dry = payouts(
        &["campaign", "upload", &file, "--dry-run", "--api", &api],
        true,
    )
    .await;
    assert_eq!(dry.code, 1, "{}{}", dry.stdout, dry.stderr);
    assert!(
        dry.stdout.contains("5 (3 valid, 2 invalid)"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("row 5 receiver_id"), "{}", dry.stdout);
    assert!(dry.stdout.contains("row 6 amount"), "{}", dry.stdout);
    assert!(dry.stderr.contains("--skip-invalid"), "{}", dry.stderr);
    // The same check with --skip-invalid would be accepted: exit 0.
    let dry_skip = payouts(
        &[
            "campaign",
            "upload",
            &file,
            "--dry-run",
            "--skip-invalid",
            "--api",
            &api,
        ],
        true,
    )
    .await;
    assert_eq!(dry_skip.code, 0, "{}{}", dry_skip.stdout, dry_skip.stderr);
    // JSON lines, told by the extension: checked the same way.
    let jsonl = write(
        &dir.path().join("drop.ndjson"),
        "{\"receiver_id\": \"user-0.devnet\", \"amount\": \"5\"}\n{\"receiver_id\": \"user-2.devnet\", \"amount_tokens\": \"1.25\"}\n",
    );
    let dry_jsonl = payouts(
        &["campaign", "upload", &jsonl, "--dry-run", "--api", &api],
        true,
    )
    .await;
    assert_eq!(
        dry_jsonl.code, 0,
        "{}{}",
        dry_jsonl.stdout, dry_jsonl.stderr
    );
    assert!(
        dry_jsonl.stdout.contains("2 (2 valid, 0 invalid)"),
        "{}",
        dry_jsonl.stdout
    );
    // A real upload of the file with errors is refused whole.
    let refused = payouts(&["campaign", "upload", &file, "--api", &api], true).await;
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("nothing was written"),
        "{}",
        refused.stderr
    );
    let mut conn = payouts_store::get(&pool).await.unwrap();
    assert!(count_by_status(&mut conn).await.unwrap().is_empty());
    assert!(campaign_by_name(&mut conn, "airdrop.csv")
        .await
        .unwrap()
        .is_none());

    // For real, the default URL from --config, the token from a file.
    let good_file = write(&dir.path().join("airdrop.csv"), good);
    let token_file = write(&dir.path().join("token"), &format!("{TOKEN}\n"));
    let stored = payouts(
        &[
            "--config",
            &client_config,
            "campaign",
            "upload",
            &good_file,
            "--token-file",
            &token_file,
        ],
        false,
    )
    .await;
    assert_eq!(stored.code, 0, "{}{}", stored.stdout, stored.stderr);
    assert!(
        stored.stdout.contains("3 (3 valid, 0 invalid)"),
        "{}",
        stored.stdout
    );
    assert!(
        stored.stdout.contains("stored, 3 claims queued"),
        "{}",
        stored.stdout
    );
    let campaign = campaign_by_name(&mut conn, "airdrop.csv")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(
        count_by_status(&mut conn).await.unwrap(),
        vec![(ClaimStatus::Pending, 3)]
    );

    // Again: the same campaign, nothing new (and PAYOUTS_API_TOKEN beside a config file is fine).
    let again = payouts(
        &[
            "--config",
            &client_config,
            "campaign",
            "upload",
            &good_file,
            "--json",
        ],
        true,
    )
    .await;
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    let answer: serde_json::Value = serde_json::from_str(again.stdout.trim()).unwrap();
    assert_eq!(answer["campaign"]["id"], campaign.id, "{answer}");
    assert_eq!(answer["inserted"], 0, "{answer}");
    assert_eq!(
        count_by_status(&mut conn).await.unwrap(),
        vec![(ClaimStatus::Pending, 3)]
    );

    // A changed file under the same name: 409, the server's message, exit 1, nothing new.
    let changed = write(
        &dir.path().join("changed.csv"),
        &format!("{good}user-8.devnet,9,,,a-9\n"),
    );
    let conflict = payouts(
        &[
            "campaign",
            "upload",
            &changed,
            "--name",
            "airdrop.csv",
            "--api",
            &api,
        ],
        true,
    )
    .await;
    assert_eq!(conflict.code, 1, "{}{}", conflict.stdout, conflict.stderr);
    assert!(
        conflict.stderr.contains("was uploaded with another file")
            && conflict.stderr.contains("HTTP 409"),
        "{}",
        conflict.stderr
    );
    assert_eq!(
        count_by_status(&mut conn).await.unwrap(),
        vec![(ClaimStatus::Pending, 3)]
    );

    // Status: the campaign's rows by claim status.
    let id = campaign.id.to_string();
    let status = payouts(&["campaign", "status", &id, "--api", &api], true).await;
    assert_eq!(status.code, 0, "{}{}", status.stdout, status.stderr);
    assert!(status.stdout.contains("`airdrop.csv`"), "{}", status.stdout);
    assert!(
        status.stdout.contains("claims:     0 of 3 paid"),
        "{}",
        status.stdout
    );
    let missing = payouts(&["campaign", "status", "999999", "--api", &api], true).await;
    assert_eq!(missing.code, 1, "{}{}", missing.stdout, missing.stderr);
    assert!(missing.stderr.contains("HTTP 404"), "{}", missing.stderr);

    // Usage errors exit 2: no token; a wrong token is the server's 401 (exit 1).
    let no_token = payouts(&["campaign", "upload", &good_file, "--api", &api], false).await;
    assert_eq!(no_token.code, 2, "{}{}", no_token.stdout, no_token.stderr);
    let wrong = write(&dir.path().join("wrong-token"), "not-the-token\n");
    let unauthorized = payouts(
        &[
            "campaign",
            "upload",
            &good_file,
            "--api",
            &api,
            "--token-file",
            &wrong,
        ],
        false,
    )
    .await;
    assert_eq!(
        unauthorized.code, 1,
        "{}{}",
        unauthorized.stdout, unauthorized.stderr
    );
    assert!(
        unauthorized.stderr.contains("HTTP 401"),
        "{}",
        unauthorized.stderr
    );

    stop(&mut server, Duration::from_secs(30));
    devnet.shutdown().await;
}
