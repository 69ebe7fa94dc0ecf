//! Campaigns end to end (issue 20): the API, a real PostgreSQL, the devnet, the indexer and the distributor
//! in one process. A 10,000-row file with 7 kinds of bad rows: the dry run lists exactly those rows and
//! writes nothing; with `skip_invalid` every good row is paid exactly once (devnet balances); the same file
//! again pays nothing; a campaign above the threshold waits for a second token (its creator's approval is
//! refused); `retry-failed` re-queues only retryable failures, and pays them once after the operator turns
//! registration on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use payouts_api::{ApiConfig, AppState, Scope, TokenConfig};
use payouts_store::{ClaimId, PgPool, Yocto};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

#[allow(dead_code)]
#[path = "../../distributor/tests/it/world.rs"]
mod world;

use world::World;

const TOKEN: &str = "token.devnet";
const SENDER: &str = "campaign-sender-0123456789abcdef";
const APPROVER: &str = "campaign-approver-0123456789abcdef";
const TREASURER: &str = "campaign-treasurer-0123456789abcdef";
const READER: &str = "campaign-reader-0123456789abcdef";
const MAX_AMOUNT: u128 = 1_000_000_000;
const THRESHOLD: u128 = 1_000_000;
const ROWS: usize = 10_000;

fn config(secrets: &tempfile::TempDir) -> ApiConfig {
    let tok = |name: &str, secret: &str, scopes: Vec<Scope>| {
        let path: PathBuf = secrets.path().join(name);
        std::fs::write(&path, format!("{secret}\n")).unwrap();
        TokenConfig {
            name: name.into(),
            scopes,
            token_env: None,
            token_file: Some(path),
        }
    };
    let mut cfg = ApiConfig {
        tokens: vec![
            tok("sender", SENDER, vec![Scope::Send]),
            tok("approver", APPROVER, vec![Scope::Send, Scope::Approve]),
            tok("treasurer", TREASURER, vec![Scope::Approve]),
            tok("reader", READER, vec![Scope::Read]),
        ],
        allowed_tokens: vec![TOKEN.into()],
        max_amount: Yocto(MAX_AMOUNT),
        ready_max_lag_blocks: 0,
        ..ApiConfig::default()
    };
    cfg.approval_threshold
        .insert(TOKEN.into(), Yocto(THRESHOLD));
    cfg
}

/// An API server on 127.0.0.1:0 over the world's database.
struct Api {
    addr: SocketAddr,
    stop: CancellationToken,
    http: reqwest::Client,
    _secrets: tempfile::TempDir,
}

impl Api {
    async fn start(world: &World, registers: Option<bool>) -> Api {
        let secrets = tempfile::tempdir().unwrap();
        let mut b = AppState::builder(world.pool.clone(), config(&secrets))
            .rpc_url(world.devnet.rpc_url())
            .treasury("treasury.devnet");
        if let Some(r) = registers {
            b = b.distributor_registers(r);
        }
        let state = b.build().unwrap();
        let listener = payouts_api::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(payouts_api::serve(listener, state, stop.clone()));
        Api {
            addr,
            stop,
            http: reqwest::Client::new(),
            _secrets: secrets,
        }
    }

    async fn upload(&self, token: &str, query: &str, body: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("http://{}/campaigns?{query}", self.addr))
            .bearer_auth(token)
            .header("content-type", "text/csv")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    async fn post(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("http://{}{path}", self.addr))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("http://{}{path}", self.addr))
            .bearer_auth(READER)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut conn = payouts_store::get(pool).await.unwrap();
    diesel::sql_query(sql)
        .get_result::<N>(&mut conn)
        .await
        .unwrap()
        .n
}

async fn all_claim_ids(pool: &PgPool) -> Vec<ClaimId> {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let mut conn = payouts_store::get(pool).await.unwrap();
    diesel::sql_query("SELECT id FROM claims ORDER BY id")
        .load::<Id>(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|r| ClaimId(r.id))
        .collect()
}

/// The 10,000-row file: good rows pay `1 + i % 97` to the registered users, each with an external id; the
/// bad rows are (line number, field) of the answer.
fn big_file() -> (String, Vec<(u64, &'static str)>, HashMap<String, u128>) {
    let bad: [(&str, &'static str); 7] = [
        ("Bad Account,5,,,bad-1", "receiver_id"),
        ("user-2.devnet,-5,,,bad-2", "amount"),
        // Duplicate within the file: e10 is a good row's key.
        ("user-4.devnet,5,,,e10", "external_id"),
        ("user-6.devnet,5,,\u{202E}gpj.exe,bad-4", "memo"),
        ("user-8.devnet,1000000001,,,bad-5", "amount"),
        // Odd users are not registered with the token; the distributor does not register receivers.
        ("user-1.devnet,5,,,bad-6", "receiver_id"),
        (
            "user-10.devnet,,0.0000000000000000000000001,,bad-7",
            "amount_tokens",
        ),
    ];
    let mut lines = vec!["receiver_id,amount,amount_tokens,memo,external_id".to_string()];
    let mut expected: HashMap<String, u128> = HashMap::new();
    let mut bad_rows = Vec::new();
    let mut good = 0usize;
    let mut next_bad = 0usize;
    while lines.len() <= ROWS {
        // A bad row every 1,400 lines, after e10 exists.
        if next_bad < bad.len() && lines.len() == 700 + 1_400 * next_bad {
            let (line, field) = bad[next_bad];
            lines.push(line.to_string());
            bad_rows.push((lines.len() as u64, field));
            next_bad += 1;
            continue;
        }
        let receiver = world::registered_user(good);
        let amount = 1 + (good % 97) as u128;
        *expected.entry(receiver.clone()).or_default() += amount;
        lines.push(format!("{receiver},{amount},,airdrop,e{good}"));
        good += 1;
    }
    assert_eq!(bad_rows.len(), 7);
    (lines.join("\n") + "\n", bad_rows, expected)
}

fn balances(world: &World, of: &HashMap<String, u128>) -> HashMap<String, u128> {
    of.keys()
        .map(|r| (r.clone(), world.balance_of(TOKEN, r)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ten_thousand_row_campaign_is_checked_paid_once_approved_and_retried() {
    let world = World::start(|_| {}).await;
    assert!(
        world
            .devnet
            .wait_for_height(3, Duration::from_secs(30))
            .await
    );
    let api = Api::start(&world, Some(false)).await;
    let mut cfg = world.config(0..4);
    cfg.register_receivers = false;
    let distributor = world.spawn(cfg).await;
    let (file, bad_rows, expected) = big_file();
    let before = balances(&world, &expected);
    let treasury_before = world.balance_of(TOKEN, "treasury.devnet");

    // Dry run: exactly the 7 bad rows, nothing written.
    let started = std::time::Instant::now();
    let (status, v) = api.upload(SENDER, "name=epoch-1&dry_run=true", &file).await;
    let dry_run_ms = started.elapsed().as_millis();
    assert_eq!(status, 200, "{v}");
    let got: Vec<(u64, String)> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap(),
                e["field"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = bad_rows.iter().map(|(r, f)| (*r, f.to_string())).collect();
    assert_eq!(got, want, "{:#}", v["errors"]);
    assert_eq!(v["totals"]["rows"], ROWS);
    assert_eq!(v["totals"]["invalid"], 7);
    let total: u128 = expected.values().sum();
    assert_eq!(v["totals"]["amount"], total.to_string());
    assert_eq!(v["chain"]["registration_checked"], true);
    assert_eq!(v["chain"]["unregistered_receivers"], 1);
    assert_eq!(v["chain"]["covered"], true);
    assert_eq!(
        count(&world.pool, "SELECT count(*) AS n FROM claims").await,
        0
    );
    assert_eq!(
        count(&world.pool, "SELECT count(*) AS n FROM campaigns").await,
        0
    );

    // The same file with skip_invalid: every good row once.
    let started = std::time::Instant::now();
    let (status, v) = api
        .upload(SENDER, "name=epoch-1&skip_invalid=true", &file)
        .await;
    let upload_ms = started.elapsed().as_millis();
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["inserted"], ROWS - 7);
    let id = v["campaign"]["id"].as_i64().unwrap();
    assert_eq!(v["campaign"]["status"], "uploaded");

    // A campaign above the threshold, by a token that may approve: its own approval is refused.
    let big = "receiver_id,amount\nuser-20.devnet,500000\nuser-22.devnet,500001\n";
    let (status, v) = api.upload(APPROVER, "name=big", big).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["campaign"]["status"], "awaiting_approval");
    let big_id = v["campaign"]["id"].as_i64().unwrap();
    let (status, v) = api
        .post(APPROVER, &format!("/admin/campaigns/{big_id}/approve"))
        .await;
    assert_eq!(status, 403, "{v}");

    let started = std::time::Instant::now();
    let counts = world.wait_settled(Duration::from_secs(600)).await;
    let paid_s = started.elapsed().as_secs_f64();
    eprintln!(
        "campaign of {} rows: dry run {dry_run_ms} ms, upload {upload_ms} ms, paid in {paid_s:.1} s ({:.0} claims/s); {counts:?}",
        ROWS - 7,
        (ROWS - 7) as f64 / paid_s
    );
    let view = api.get(&format!("/campaigns/{id}")).await;
    assert_eq!(view["status"], "done", "{view}");
    assert_eq!(view["rows_paid"], ROWS - 7);
    assert_eq!(view["rows_valid"], ROWS - 7);
    assert_eq!(view["paid_total"], total.to_string());
    // Held: nothing of it paid while the rest was.
    let held = api.get(&format!("/campaigns/{big_id}")).await;
    assert_eq!(held["claims"]["held"], 2, "{held}");
    let after = balances(&world, &expected);
    for (r, amount) in &expected {
        assert_eq!(after[r], before[r] + amount, "{r}");
    }
    assert_eq!(
        world.balance_of(TOKEN, "treasury.devnet"),
        treasury_before - total
    );
    world
        .assert_exactly_once(&all_claim_ids(&world.pool).await)
        .await;

    // The same file again: the same campaign, nothing inserted, nothing paid.
    let transfers = world.memo_transfers().len();
    let (status, v) = api
        .upload(SENDER, "name=epoch-1&skip_invalid=true", &file)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["inserted"], 0);
    assert_eq!(v["campaign"]["id"], id);
    assert_eq!(
        count(&world.pool, "SELECT count(*) AS n FROM claims").await,
        (ROWS - 7 + 2) as i64
    );
    world.wait_settled(Duration::from_secs(60)).await;
    assert_eq!(world.memo_transfers().len(), transfers);

    // A second token approves: paid once.
    let b20 = world.balance_of(TOKEN, "user-20.devnet");
    let b22 = world.balance_of(TOKEN, "user-22.devnet");
    let (status, v) = api
        .post(TREASURER, &format!("/admin/campaigns/{big_id}/approve"))
        .await;
    assert_eq!(status, 200, "{v}");
    world.wait_settled(Duration::from_secs(120)).await;
    assert_eq!(world.balance_of(TOKEN, "user-20.devnet"), b20 + 500_000);
    assert_eq!(world.balance_of(TOKEN, "user-22.devnet"), b22 + 500_001);
    assert_eq!(
        api.get(&format!("/campaigns/{big_id}")).await["status"],
        "done"
    );

    // Failures: an API not told about registrations lets unregistered receivers in; they fail, as does a
    // transfer to the treasury itself (permanent). Nothing retryable while registration is off.
    let blind = Api::start(&world, None).await;
    let rows = "receiver_id,amount\nuser-1.devnet,3\nuser-3.devnet,4\ntreasury.devnet,5\nuser-12.devnet,6\n";
    let (status, v) = blind.upload(SENDER, "name=retry", rows).await;
    assert_eq!(status, 201, "{v}");
    let retry_id = v["campaign"]["id"].as_i64().unwrap();
    world.wait_settled(Duration::from_secs(120)).await;
    let view = api.get(&format!("/campaigns/{retry_id}")).await;
    assert_eq!(view["claims"]["failed"], 3, "{view}");
    assert_eq!(view["claims"]["confirmed"], 1, "{view}");
    let csv = blind
        .http
        .get(format!(
            "http://{}/campaigns/{retry_id}/failures.csv",
            blind.addr
        ))
        .bearer_auth(READER)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.ends_with(",false")), "{csv}");
    let (status, v) = api
        .post(SENDER, &format!("/campaigns/{retry_id}/retry-failed"))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (&v["requeued"], &v["not_retryable"]),
        (&0.into(), &3.into()),
        "{v}"
    );

    // The operator turns registration on: the two unregistered rows are retryable now, the treasury's not.
    distributor.shutdown().await;
    let mut cfg = world.config(0..4);
    cfg.register_receivers = true;
    let distributor = world.spawn(cfg).await;
    let registering = Api::start(&world, Some(true)).await;
    let b1 = world.balance_of(TOKEN, "user-1.devnet");
    let b3 = world.balance_of(TOKEN, "user-3.devnet");
    let (status, v) = registering
        .post(SENDER, &format!("/campaigns/{retry_id}/retry-failed"))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (&v["requeued"], &v["not_retryable"]),
        (&2.into(), &1.into()),
        "{v}"
    );
    world.wait_settled(Duration::from_secs(120)).await;
    assert_eq!(world.balance_of(TOKEN, "user-1.devnet"), b1 + 3);
    assert_eq!(world.balance_of(TOKEN, "user-3.devnet"), b3 + 4);
    let view = api.get(&format!("/campaigns/{retry_id}")).await;
    assert_eq!(view["claims"]["confirmed"], 3, "{view}");
    assert_eq!(view["claims"]["failed"], 1, "{view}");
    assert_eq!(view["status"], "done");
    world
        .assert_exactly_once(&all_claim_ids(&world.pool).await)
        .await;

    distributor.shutdown().await;
    for a in [&api, &blind, &registering] {
        a.stop.cancel();
    }
    world.stop().await;
}
