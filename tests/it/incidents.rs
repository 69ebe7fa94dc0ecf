//! A deliberate overpayment against the real binary: `payouts run` pays a claim; the receiver then sends
//! tokens to someone else with that claim's memo (a payment in our name that we did not make). The indexer
//! records an incident, `/status`, `/metrics` and an `incident.opened` webhook show it, the distributor signs
//! nothing more for the token (a new claim stays `pending` while the chain moves on), and after
//! `payouts incidents clear` payouts resume and the new claim is paid once. The devnet runs three nodes
//! behind one URL, lagging up to two blocks, as nearcore RPC pools do.

use std::process::{Command, Stdio};
use std::time::Duration;

use near_primitives::action::{Action, FunctionCallAction};
use near_primitives::transaction::{Transaction, TransactionV0};
use near_primitives::types::{AccountId, Balance, Gas};
use payouts_devnet::{Devnet, DevnetHandle};
use payouts_distributor::chain::Chain;
use payouts_store::memo::transfer_memo;
use payouts_store::testdb::TestDb;
use payouts_store::ClaimId;
use payouts_webhooks::receiver::{Mode, Receiver};

use crate::child;

const TOKEN: &str = "incident-test-token-0123456789";
const SECRET: &str = "incident-test-webhook-secret";

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn get(&self, path: &str) -> serde_json::Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.unwrap()
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn send_ft(&self, key: &str, receiver: &str, amount: u128) -> ClaimId {
        let resp = self
            .http
            .post(format!("{}/send-ft", self.base))
            .bearer_auth(TOKEN)
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({"receiver_id": receiver, "amount": amount.to_string()}))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(status, 202, "{body}");
        ClaimId(body["id"].as_i64().unwrap())
    }

    async fn claim_status(&self, id: ClaimId) -> String {
        self.get(&format!("/claims/{}", id.0)).await["status"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn wait_status(&self, id: ClaimId, want: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.claim_status(id).await;
            if got == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "claim {id:?} is {got}, not {want}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Our `ft_transfer`s on chain (memo `payouts:<id>`) for claim `id`, and anyone's.
fn transfers_with_memo(devnet: &DevnetHandle, id: ClaimId) -> Vec<(String, String, u128)> {
    let memo = transfer_memo(id, None);
    devnet
        .ft_transfers()
        .into_iter()
        .filter(|t| t.event.memo.as_deref() == Some(memo.as_str()))
        .map(|t| {
            (
                t.event.sender.to_string(),
                t.event.receiver.to_string(),
                t.event.amount,
            )
        })
        .collect()
}

/// `from` pays `amount` of the devnet token to `to` with `memo`, and the test waits until it is final.
async fn foreign_transfer(
    devnet: &DevnetHandle,
    from: &AccountId,
    to: &str,
    amount: u128,
    memo: &str,
) {
    let signer = devnet.signer(from, 0).unwrap();
    let chain = Chain::new(&devnet.rpc_url(), Duration::from_secs(5)).unwrap();
    let nonce = chain
        .access_key_nonce(&signer.get_account_id(), &signer.public_key())
        .await
        .unwrap()
        .unwrap();
    let (_, block_hash) = chain.final_block().await.unwrap();
    let args = serde_json::json!({"receiver_id": to, "amount": amount.to_string(), "memo": memo});
    let tx = Transaction::V0(TransactionV0 {
        signer_id: signer.get_account_id(),
        public_key: signer.public_key(),
        nonce: nonce + 1,
        receiver_id: devnet.token().clone(),
        block_hash,
        actions: vec![Action::FunctionCall(Box::new(FunctionCallAction {
            method_name: "ft_transfer".into(),
            args: args.to_string().into_bytes(),
            gas: Gas::from_gas(10 * payouts_devnet::TGAS),
            deposit: Balance::from_yoctonear(1),
        }))],
    });
    let signed = payouts_devnet::validate::sign(tx, &signer);
    let hash = signed.get_hash();
    // The node answers a known transaction with its status: send until it is on chain.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !devnet.is_on_chain(&hash) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the foreign transfer never landed"
        );
        let _ = chain.submit_async(&signed).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn cli(config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_payouts"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_payment_with_a_claim_memo_pauses_the_token_until_an_admin_clears_it() {
    let (devnet, keys) = Devnet::start_for_tests(|c| {
        c.nodes = 3;
        c.max_node_lag_blocks = 2;
    })
    .await
    .unwrap();
    let db = TestDb::new().await;
    let rx = Receiver::start(
        "127.0.0.1:0".parse().unwrap(),
        SECRET.as_bytes(),
        Mode::Accept,
    )
    .await
    .unwrap();
    let key_files: Vec<String> = devnet.treasury_key_files()[..2]
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    let config = keys.path().join("payouts.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = {db:?}\n\n[network]\nrpc_url = {rpc:?}\n\n[log]\nformat = \"json\"\nlevel = \"warn\"\n\n\
             [api]\nlisten = \"127.0.0.1:0\"\nallowed_tokens = [\"token.devnet\"]\n\n\
             [[api.tokens]]\nname = \"ops\"\nscopes = [\"read\", \"send\", \"admin\"]\ntoken_env = \"INCIDENT_TEST_TOKEN\"\n\n\
             [indexer]\nstart_block_height = 1\n\n[indexer.source]\nkind = \"fastnear\"\nendpoint = {rpc:?}\n\n\
             [distributor]\nkey_files = [{keys}]\npoll_interval_ms = 20\nmax_batch_wait_ms = 100\n\n\
             [webhooks]\npoll_interval_ms = 20\n\n[[webhooks.endpoints]]\nname = \"ops\"\nurl = {url:?}\n\
             secret_env = \"INCIDENT_TEST_WEBHOOK_SECRET\"\nevents = [\"incident.opened\"]\n",
            db = db.url().expose(),
            rpc = devnet.rpc_url(),
            keys = key_files.join(", "),
            url = rx.url(),
        ),
    )
    .unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_payouts"))
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("DATABASE_URL")
        .env("INCIDENT_TEST_TOKEN", TOKEN)
        .env("INCIDENT_TEST_WEBHOOK_SECRET", SECRET)
        .env("RUST_LOG", "warn,payouts_api::server=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = child::lines(run.stderr.take().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let addr = loop {
        let line = log
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("API never came up");
        eprintln!("{line}");
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if v["fields"]["message"] == "API listening" {
            break v["fields"]["addr"].as_str().unwrap().to_string();
        }
    };
    std::thread::spawn(move || {
        for line in log {
            eprintln!("{line}");
        }
    });
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://{addr}"),
    };

    // A claim paid to user-0, who then holds tokens.
    let payer: AccountId = "user-0.devnet".parse().unwrap();
    let first = api.send_ft("first", payer.as_str(), 1_000).await;
    api.wait_status(first, "confirmed", Duration::from_secs(60))
        .await;
    assert!(api.get("/status").await["incidents"]
        .as_array()
        .unwrap()
        .is_empty());

    // user-0 pays user-2 with the first claim's memo.
    foreign_transfer(
        &devnet,
        &payer,
        "user-2.devnet",
        10,
        &transfer_memo(first, None),
    )
    .await;

    // Recorded and shown on /status …
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let incident = loop {
        let status = api.get("/status").await;
        if let Some(i) = status["incidents"].as_array().unwrap().first() {
            break i.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no incident on /status: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(incident["kind"], "unexpected_memo_payment", "{incident}");
    assert_eq!(incident["token"], "token.devnet");
    assert_eq!(incident["claim_id"], first.0);
    assert_eq!(incident["details"]["from"], "user-0.devnet");
    assert_eq!(incident["details"]["to"], "user-2.devnet");
    assert_eq!(incident["details"]["amount"], "10");
    let id = incident["id"].as_i64().unwrap();
    // … exported as a metric …
    let metrics = api.metrics().await;
    assert!(
        metrics.contains("payouts_incidents_open{kind=\"unexpected_memo_payment\"} 1"),
        "{metrics}"
    );
    // … and sent as a signed webhook.
    assert!(
        rx.wait_until(Duration::from_secs(30), |r| r
            .iter()
            .any(|r| r.body["type"] == "incident.opened"))
            .await,
        "no incident.opened webhook"
    );
    let hook = rx
        .accepted()
        .into_iter()
        .find(|r| r.body["type"] == "incident.opened")
        .unwrap();
    assert!(hook.verified);
    assert_eq!(hook.body["data"]["incident"]["id"], id);

    // Fail closed: a new claim of the token is not signed while the incident is open, however far the
    // chain moves (the indexer keeps up; ten blocks is many distributor polls).
    let next = api.send_ft("next", "user-4.devnet", 77).await;
    let from = devnet.final_height();
    assert!(
        devnet
            .wait_for_height(from + 10, Duration::from_secs(30))
            .await
    );
    assert_eq!(api.claim_status(next).await, "pending");
    assert!(transfers_with_memo(&devnet, next).is_empty());
    // The distributor says why (its heartbeat carries the reason to /status).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = api.get("/status").await;
        let paused = status["distributors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["paused_reason"].as_str())
            .any(|r| r.contains(&format!("incident {id}")));
        if paused {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no distributor paused on incident {id}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(api.claim_status(next).await, "pending");

    // The operator's CLI lists it, clears it, refuses to clear it twice.
    let (ok, out, err) = cli(&config, &["incidents", "list"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("#{id} unexpected_memo_payment token=token.devnet")),
        "{out}"
    );
    assert!(out.contains("OPEN"), "{out}");
    let (ok, out, err) = cli(
        &config,
        &["incidents", "clear", &id.to_string(), "--by", "alice"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("cleared by cli:alice"), "{out}");
    let (ok, _, err) = cli(&config, &["incidents", "clear", &id.to_string()]);
    assert!(!ok);
    assert!(err.contains("already cleared by cli:alice"), "{err}");
    let (ok, _, err) = cli(&config, &["incidents", "clear", "999999"]);
    assert!(!ok);
    assert!(err.contains("does not exist"), "{err}");

    // Payouts resume: the new claim is paid once; nothing else raised an incident.
    api.wait_status(next, "confirmed", Duration::from_secs(60))
        .await;
    assert_eq!(
        transfers_with_memo(&devnet, next),
        vec![(
            devnet.treasury().to_string(),
            "user-4.devnet".to_string(),
            77
        )]
    );
    assert_eq!(
        transfers_with_memo(&devnet, first),
        vec![
            (
                devnet.treasury().to_string(),
                "user-0.devnet".to_string(),
                1_000
            ),
            ("user-0.devnet".to_string(), "user-2.devnet".to_string(), 10),
        ]
    );
    assert!(api.get("/status").await["incidents"]
        .as_array()
        .unwrap()
        .is_empty());
    let all = api.get("/incidents").await;
    assert_eq!(all["incidents"].as_array().unwrap().len(), 1, "{all}");
    assert_eq!(all["incidents"][0]["cleared_by"], "cli:alice");

    child::stop(&mut run, Duration::from_secs(30));
    devnet.shutdown().await;
}
