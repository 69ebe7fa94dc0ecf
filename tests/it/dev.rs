//! `payouts dev`: one command brings up Postgres, the devnet with its load generator, the indexer, the
//! distributor and the dashboard; claims get paid within a minute; Ctrl-C stops it all and removes the data.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::child::lines;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_pays_claims_within_a_minute_and_cleans_up_on_ctrl_c() {
    let cwd = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_payouts"))
        .args([
            "dev",
            "--api-listen",
            "127.0.0.1:0",
            "--rpc-listen",
            "127.0.0.1:0",
        ])
        .current_dir(cwd.path())
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let spawned = Instant::now();
    let rx = lines(child.stdout.take().unwrap());
    // Start-up (initdb, the devnet, migrations) is not what is measured, but it must finish.
    let banner_deadline = spawned + Duration::from_secs(180);
    let mut banner = Vec::new();
    while !banner.iter().any(|l: &String| l.contains("work dir:")) {
        let left = banner_deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no complete banner from payouts dev ({e}): {banner:?}"));
        banner.push(line);
    }
    // The banner is printed once every part runs and the API listens: the clock starts here.
    let started = Instant::now();
    eprintln!("payouts dev ready after {:?}", started - spawned);
    let field = |name: &str| {
        banner
            .iter()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no {name} in {banner:?}"))
    };
    let dashboard = field("dashboard:");
    let rpc = field("rpc:");
    let work_dir = std::path::PathBuf::from(field("work dir:"));
    let token_file = field("api token:");
    let token_path = token_file.split(' ').next().unwrap();
    assert!(std::path::Path::new(token_path).is_file());
    assert!(field("key files:").contains("treasury.devnet-0.json"));
    let token = std::fs::read_to_string(token_path).unwrap();

    // The throwaway Postgres needs its password (SCRAM), kept in a file only this user can read: another
    // local user cannot connect and insert claims that payouts dev would pay.
    let database = field("database:");
    let (url, rest) = database
        .split_once(" (password in ")
        .expect("password file in the banner");
    let pw_file = rest.trim_end_matches(')');
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(pw_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{pw_file}");
    }
    let password = std::fs::read_to_string(pw_file).unwrap();
    {
        use diesel_async::AsyncConnection;
        assert!(
            diesel_async::AsyncPgConnection::establish(url)
                .await
                .is_err(),
            "{url} accepted a connection without a password"
        );
        let with = url.replacen("postgres@", &format!("postgres:{}@", password.trim()), 1);
        diesel_async::AsyncPgConnection::establish(&with)
            .await
            .unwrap_or_else(|e| panic!("with the password from {pw_file}: {e}"));
    }

    let http = reqwest::Client::new();
    let page = http.get(&dashboard).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let head: serde_json::Value = http
        .post(&rpc)
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "status", "params": []}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        head["result"]["sync_info"]["latest_block_height"]
            .as_u64()
            .is_some(),
        "{head}"
    );
    // Users' claim calls on the devnet get paid soon after start-up: within a minute on a quiet machine,
    // the bound leaves room for a slow, loaded CI host.
    let paid_within = Duration::from_secs(120);
    let status_url = format!("{dashboard}status");
    let confirmed = loop {
        let status: serde_json::Value = http
            .get(&status_url)
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let n = status["claims"]["by_status"]["confirmed"]
            .as_u64()
            .unwrap_or(0);
        if n >= 10 {
            break n;
        }
        assert!(
            started.elapsed() < paid_within,
            "only {n} claims confirmed {:?} after the banner: {status}",
            started.elapsed()
        );
        assert!(child.try_wait().unwrap().is_none(), "payouts dev exited");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "{confirmed} claims confirmed {:?} after the banner ({:?} after spawn)",
        started.elapsed(),
        spawned.elapsed()
    );

    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after Ctrl-C");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
    assert!(!work_dir.exists(), "{} left behind", work_dir.display());
}

#[test]
fn dev_without_postgres_says_how_to_install_it() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_payouts"))
        .arg("dev")
        .current_dir(empty.path())
        .env("POSTGRES_BIN_DIR", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apt-get install -y postgresql"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
