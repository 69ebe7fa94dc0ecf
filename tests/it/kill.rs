//! `kill -9` of `payouts distributor` at random moments, restarted each time, during a run of at least 5,000
//! claims: the final balances are exact, nothing is paid twice, nothing is lost.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use payouts_devnet::{Devnet, DevnetHandle};
use payouts_indexer::{Indexer, IndexerConfig, IndexerMetrics};
use payouts_store::claims::{count_by_status, insert_claims};
use payouts_store::memo::claim_ids_from_memo;
use payouts_store::testdb::{wait_until, TestDb};
use payouts_store::{ClaimStatus, PgPool};
use tokio_util::sync::CancellationToken;

use crate::claims::manual_claims;

const CLAIMS: usize = 5_000;
/// Claims added whenever a kill finds everything paid.
const MORE_CLAIMS: usize = 1_000;

/// Inserts `n` more claims (`kill-{i}`, see [`manual_claims`]), adding them to the balances `expected` at the end.
async fn add_claims(
    pool: &PgPool,
    devnet: &DevnetHandle,
    expected: &mut HashMap<String, u128>,
    total: &mut usize,
    n: usize,
) {
    let rows = manual_claims(devnet, "kill", *total..*total + n, expected);
    let mut conn = payouts_store::get(pool).await.unwrap();
    for chunk in rows.chunks(1000) {
        insert_claims(&mut conn, chunk).await.unwrap();
    }
    *total += n;
}

/// Starts `payouts distributor`; its stderr (warnings and errors) is appended to `distributor.log` beside
/// the config, shown when the last process does not stop cleanly.
fn spawn_distributor(config: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.with_file_name("distributor.log"))
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_payouts"))
        .arg("distributor")
        .arg("--config")
        .arg(config)
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

async fn counts(pool: &PgPool) -> HashMap<ClaimStatus, i64> {
    let mut conn = payouts_store::get(pool).await.unwrap();
    count_by_status(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

async fn db_now(pool: &PgPool) -> chrono::DateTime<chrono::Utc> {
    use diesel_async::RunQueryDsl;
    let mut conn = payouts_store::get(pool).await.unwrap();
    use diesel::IntoSql;
    diesel::select(diesel::dsl::now.into_sql::<diesel::sql_types::Timestamptz>())
        .get_result(&mut conn)
        .await
        .unwrap()
}

/// Whether the `kill-test` distributor has (re-)registered since `t`.
async fn started_since(pool: &PgPool, t: chrono::DateTime<chrono::Utc>) -> bool {
    let mut conn = payouts_store::get(pool).await.unwrap();
    payouts_store::status::list_status(&mut conn)
        .await
        .unwrap()
        .iter()
        .any(|s| s.owner == "kill-test" && s.started_at > t)
}

fn open(c: &HashMap<ClaimStatus, i64>) -> i64 {
    c.get(&ClaimStatus::Pending).copied().unwrap_or(0)
        + c.get(&ClaimStatus::Submitted).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_minus_nine_at_random_moments_loses_and_duplicates_nothing() {
    let (devnet, dir) = Devnet::start_for_tests(|_| {}).await.unwrap();
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let icfg = IndexerConfig {
        start_block_height: Some(1),
        ..IndexerConfig::fastnear(devnet.rpc_url())
    };
    let indexer = Indexer::new(pool.clone(), icfg, Arc::new(IndexerMetrics::default())).unwrap();
    let stop_indexer = CancellationToken::new();
    tokio::spawn(indexer.run(stop_indexer.clone()));

    // 5,000 claims over the 500 registered users to start with; more are added if a fast machine pays them all
    // before the kills are done.
    let mut expected: HashMap<String, u128> = HashMap::new();
    let mut total = 0;
    add_claims(&pool, &devnet, &mut expected, &mut total, CLAIMS).await;

    // The real binary, configured by file; small batches so the run spans many kills. A stable instance id:
    // a restarted process takes its own keys back at once.
    let keys: Vec<String> = devnet
        .treasury_key_files()
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    let config = dir.path().join("payouts.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = {:?}\n\n[network]\nchain_id = \"devnet\"\nrpc_url = {:?}\n\n[log]\nlevel = \"warn\"\n\n\
             [distributor]\nkey_files = [{}]\ninstance_id = \"kill-test\"\nmax_transfers_per_tx = 5\n\
             max_in_flight_per_key = 4\npoll_interval_ms = 20\nmax_batch_wait_ms = 100\nlease_ttl_ms = 3000\n\
             rebroadcast_after_ms = 1000\noutcome_timeout_ms = 8000\nrpc_timeout_ms = 3000\n",
            db.url().expose(),
            devnet.rpc_url(),
            keys.join(", ")
        ),
    )
    .unwrap();

    // Kill at random moments (a seeded LCG: reproducible), at least 10 times while claims are still open.
    let mut seed: u64 = 0x5eed_1234;
    let mut kills_while_open = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while kills_while_open < 10 {
        assert!(Instant::now() < deadline, "kill loop never finished");
        let mut child = spawn_distributor(&config);
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let alive_ms = 300 + (seed >> 33) % 1200;
        tokio::time::sleep(Duration::from_millis(alive_ms)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let c = counts(&pool).await;
        if open(&c) > 0 {
            kills_while_open += 1;
        } else {
            // Everything is paid already: the next kills need claims to interrupt.
            add_claims(&pool, &devnet, &mut expected, &mut total, MORE_CLAIMS).await;
        }
        eprintln!("kill after {alive_ms} ms: {c:?}");
    }

    // A last process runs to the end, then stops gracefully (SIGTERM). The in-process indexer may confirm the
    // last open claims before this process has even started, so the signal waits until it has registered.
    let spawned_at = db_now(&pool).await;
    let mut child = spawn_distributor(&config);
    let c = wait_until(
        Duration::from_secs(300),
        "every claim settled",
        async || {
            assert!(child.try_wait().unwrap().is_none(), "distributor exited");
            let c = counts(&pool).await;
            if open(&c) == 0 {
                Ok(c)
            } else {
                Err(c)
            }
        },
    )
    .await;
    assert_eq!(
        c.get(&ClaimStatus::Confirmed).copied(),
        Some(total as i64),
        "{c:?}"
    );
    wait_until(
        Duration::from_secs(60),
        "the last distributor to register",
        async || {
            assert!(child.try_wait().unwrap().is_none(), "distributor exited");
            started_since(&pool, spawned_at)
                .await
                .then_some(())
                .ok_or("not yet")
        },
    )
    .await;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    if !status.success() {
        let log = std::fs::read_to_string(dir.path().join("distributor.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        panic!(
            "after SIGTERM: {status}; last log lines, newest first:\n{}",
            tail.join("\n")
        );
    }

    // Exactly once: one transfer per claim memo, and exact balances.
    let mut per_claim: HashMap<i64, usize> = HashMap::new();
    for t in devnet.ft_transfers() {
        // A merged transfer pays every claim its memo names.
        for id in t
            .event
            .memo
            .as_deref()
            .and_then(claim_ids_from_memo)
            .unwrap_or_default()
        {
            *per_claim.entry(id.0).or_default() += 1;
        }
    }
    assert_eq!(per_claim.len(), total, "claims paid");
    let dups: Vec<_> = per_claim.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "paid twice: {dups:?}");
    for (r, want) in expected {
        let id: near_primitives::types::AccountId = r.parse().unwrap();
        assert_eq!(devnet.ft_balance(&id).unwrap(), want, "balance of {r}");
    }
    stop_indexer.cancel();
    devnet.shutdown().await;
}
