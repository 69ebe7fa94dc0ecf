//! The Campaigns view in headless Chromium against the whole system: a real server on a fresh database, the
//! devnet (its token `FT` with 24 decimals), the indexer confirming outcomes and a distributor paying. A person
//! uploads a file with bad rows: the dry run lists them and writes nothing; the upload without
//! `skip_invalid` is refused whole, with it the good rows are stored and wait for approval (the distributor
//! does not touch them); the creator's own token cannot approve, a second token does; the progress bar
//! reaches 100 %, amounts read `12.5 FT` (raw units in the tooltip), and the transaction links to the
//! configured explorer. A second campaign's row fails (its receiver is not registered): its failures.csv
//! downloads, and retrying it queues nothing. A third is rejected: nothing paid. A screenshot goes to `<target>/screenshots/campaigns.png`.

use std::sync::Arc;
use std::time::Duration;

use near_primitives::types::AccountId;
use payouts_api::{Scope, TokenConfig};
use payouts_devnet::{Devnet, DevnetHandle};
use payouts_distributor::{Distributor, DistributorConfig, DistributorMetrics};
use payouts_indexer::{Indexer, IndexerConfig, IndexerMetrics};
use payouts_store::api_queries::{list_claims, ClaimFilter};
use payouts_store::claims::count_by_status;
use payouts_store::{ClaimStatus, PgPool, Yocto};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::browser::{screenshot_path_named, text_of, wait_js, wait_js_within, wait_text};
use crate::cdp::Browser;
use crate::support::{app_with, Server, TOKEN_A, TREASURER};

/// Scopes read + send + approve: uploads the campaign, and may approve others' (never its own).
const CREATOR: &str = "creator-token-0123456789abcdef";
const EXPLORER: &str = "https://explorer.example/txns/{hash}";
const ONE: u128 = 1_000_000_000_000_000_000_000_000;
/// How long paying the three rows may take (devnet blocks every 50 ms; a loaded 2-core machine).
const PAYING: Duration = Duration::from_secs(120);

/// The devnet's default layout, smaller, with the token named `FT`.
const GENESIS: &str = r#"
treasury = "treasury.devnet"

[[accounts]]
account_id = "treasury.devnet"
amount = "1000000000000000000000000000000"
key_count = 1

[[accounts]]
account_id = "token.devnet"
amount = "100000000000000000000000000"
key_count = 1
contract = "ft"

[users]
count = 10
amount = "100000000000000000000000000"
register_even = true

[token]
account_id = "token.devnet"
owner_id = "treasury.devnet"
total_supply = "1000000000000000000000000000000000"
decimals = 24
name = "Test Fungible Token"
symbol = "FT"
"#;

/// Three good rows (15.75 FT in all, above the 10 FT threshold) and four bad ones (lines 5 to 8).
const FILE: &str = "receiver_id,amount_tokens,memo,external_id\n\
    user-0.devnet,12.5,airdrop,r0\n\
    user-2.devnet,3,,r2\n\
    user-4.devnet,0.25,,r4\n\
    Not An Account,1,,bad-1\n\
    user-6.devnet,1.0000000000000000000000001,,bad-2\n\
    user-8.devnet,-1,,bad-3\n\
    user-2.devnet,1,,r2\n";

fn balance(devnet: &DevnetHandle, account: &str) -> u128 {
    let id: AccountId = account.parse().unwrap();
    devnet.ft_balance(&id).unwrap_or(0)
}

async fn held_and_confirmed(pool: &PgPool) -> (i64, i64) {
    let mut conn = payouts_store::get(pool).await.unwrap();
    let counts = count_by_status(&mut conn).await.unwrap();
    let of = |s: ClaimStatus| {
        counts
            .iter()
            .find(|(st, _)| *st == s)
            .map_or(0, |(_, n)| *n)
    };
    (of(ClaimStatus::Held), of(ClaimStatus::Confirmed))
}

#[tokio::test]
async fn a_campaign_is_checked_uploaded_approved_and_paid_from_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let genesis = dir.path().join("genesis.toml");
    std::fs::write(&genesis, GENESIS).unwrap();
    let (devnet, _keys) = Devnet::start_for_tests(|c| c.genesis = Some(genesis.clone()))
        .await
        .unwrap();
    // `ft_metadata` is read at the final block: wait until there is one.
    assert!(devnet.wait_for_height(3, Duration::from_secs(30)).await);
    let creator_file = dir.path().join("creator-token");
    std::fs::write(&creator_file, CREATOR).unwrap();
    let rpc = devnet.rpc_url();
    let app = app_with(
        |c| {
            c.tokens.push(TokenConfig {
                name: "creator".into(),
                scopes: vec![Scope::Read, Scope::Send, Scope::Approve],
                token_env: None,
                token_file: Some(creator_file.clone()),
            });
            c.approval_threshold.insert(TOKEN_A.into(), Yocto(10 * ONE));
            c.explorer_tx_url = Some(EXPLORER.into());
            c.status_cache_ms = 200;
        },
        // The treasury: dry runs compare its balance with the total.
        |b| b.rpc_url(rpc.clone()).treasury("treasury.devnet"),
    )
    .await;

    // The rest of the system: the indexer reconciling outcomes, one distributor on one treasury key.
    let stop = CancellationToken::new();
    let indexer = Indexer::new(
        app.pool.clone(),
        IndexerConfig {
            start_block_height: Some(1),
            ..IndexerConfig::fastnear(devnet.rpc_url())
        },
        Arc::new(IndexerMetrics::default()),
    )
    .unwrap();
    let indexer_task = tokio::spawn(indexer.run(stop.clone()));
    let distributor = Distributor::new(
        app.pool.clone(),
        DistributorConfig {
            key_files: devnet.treasury_key_files()[..1].to_vec(),
            poll_interval_ms: 20,
            max_batch_wait_ms: 200,
            lease_ttl_ms: 3_000,
            rebroadcast_after_ms: 1_000,
            outcome_timeout_ms: 8_000,
            rpc_timeout_ms: 3_000,
            shutdown_grace_ms: 5_000,
            ..DistributorConfig::default()
        },
        &devnet.rpc_url(),
        Arc::new(DistributorMetrics::default()),
    )
    .await
    .unwrap();
    let distributor_task = tokio::spawn(distributor.run(stop.clone()));
    let server = Server::start(app.state.clone()).await;
    let before: Vec<u128> = ["user-0.devnet", "user-2.devnet", "user-4.devnet"]
        .iter()
        .map(|a| balance(&devnet, a))
        .collect();

    let csv = dir.path().join("airdrop.csv");
    std::fs::write(&csv, FILE).unwrap();
    let mut b = Browser::launch(1440, 1100).await;
    b.navigate(&server.url("/")).await;
    wait_js(
        &mut b,
        "(() => { const f = document.getElementById('login-form'); \
          return f !== null && !f.classList.contains('hidden'); })()",
        "the read-token prompt",
    )
    .await;
    b.type_into("login-token", CREATOR).await;
    b.click("login-submit").await;
    // The token's symbol from ft_metadata labels the token selects.
    wait_js(
        &mut b,
        "(() => { const s = document.getElementById('camp-token'); \
          return s.options.length === 2 && s.options[0].textContent === 'FT · token.devnet'; })()",
        "the campaign form's token select with the symbol",
    )
    .await;

    // The manual send form says what its smallest-unit amount means.
    b.type_into("send-amount", "12500000000000000000000000")
        .await;
    wait_js(
        &mut b,
        "document.getElementById('send-amount-units').textContent === '= 12.5 FT'",
        "the send amount in token units",
    )
    .await;

    // Dry run: the four bad rows with their fields, the total in token units, nothing written.
    b.set_files("camp-file", &[&csv]).await;
    b.type_into("camp-name", "airdrop-1").await;
    b.click("camp-dry").await;
    let errors = wait_js(
        &mut b,
        "(() => { const rows = [...document.querySelectorAll('#dryrun-errors tr:not(.empty)')]; \
          return rows.length ? rows.map((r) => [...r.cells].map((c) => c.textContent)) : null; })()",
        "the dry-run errors",
    )
    .await;
    let errors: Vec<Vec<String>> = serde_json::from_value(errors).unwrap();
    let rows: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e[0].as_str(), e[1].as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("5", "receiver_id"),
            ("6", "amount_tokens"),
            ("7", "amount_tokens"),
            ("8", "external_id")
        ],
        "{errors:?}"
    );
    assert!(errors[1][2].contains("25 decimals"), "{errors:?}");
    let facts = text_of(&mut b, "dryrun-facts").await;
    assert!(facts.contains("valid3"), "{facts}");
    assert!(facts.contains("invalid4"), "{facts}");
    assert!(facts.contains("total15.75 FT"), "{facts}");
    assert!(facts.contains("needs a second person"), "{facts}");
    // The whole supply, 10^9 FT, is the treasury's.
    assert!(
        facts.contains("treasurycovers it · 1,000,000,000 FT"),
        "{facts}"
    );
    let total_title = b
        .eval("document.querySelector('#dryrun-facts .fact:nth-child(4)').title")
        .await;
    assert!(
        total_title
            .as_str()
            .unwrap()
            .starts_with("15750000000000000000000000 "),
        "{total_title}"
    );
    assert_eq!(app.claim_rows().await, 0, "a dry run writes nothing");

    // Without skip_invalid the file is refused whole; with it the good rows are stored, held.
    wait_js(
        &mut b,
        "!document.getElementById('camp-upload').disabled",
        "the upload button after the dry run",
    )
    .await;
    b.click("camp-upload").await;
    wait_js(
        &mut b,
        "document.getElementById('camp-result').textContent.startsWith('Refused whole')",
        "the refusal of a file with errors",
    )
    .await;
    assert_eq!(app.claim_rows().await, 0);
    b.click("camp-skip").await;
    b.click("camp-upload").await;
    wait_js(
        &mut b,
        "document.getElementById('camp-result').textContent.includes('stored: 3 rows')",
        "the stored campaign",
    )
    .await;
    let id = wait_js(
        &mut b,
        "(() => { const r = document.querySelector('#campaigns-body tr[data-id]'); \
          return r && r.cells[2].textContent === 'awaiting approval' ? r.dataset.id : null; })()",
        "the campaign awaiting approval in the list",
    )
    .await;
    let id = id.as_str().unwrap().to_string();
    assert_eq!(held_and_confirmed(&app.pool).await, (3, 0));
    wait_text(&mut b, "count-held", "3").await;

    // The creator's own token is refused; a second person's approves.
    b.click(&format!("approve-{id}")).await;
    wait_js(
        &mut b,
        "!document.getElementById('approve-form').classList.contains('hidden')",
        "the approval form",
    )
    .await;
    b.type_into("approve-token", CREATOR).await;
    b.click("approve-confirm").await;
    wait_js(
        &mut b,
        "document.getElementById('approve-result').classList.contains('bad')",
        "the refusal of the creator's approval",
    )
    .await;
    let refusal = text_of(&mut b, "approve-result").await;
    assert!(refusal.contains("cannot approve"), "{refusal}");
    // Held all along: the distributor never picked the rows up.
    assert_eq!(held_and_confirmed(&app.pool).await, (3, 0));
    let now: Vec<u128> = ["user-0.devnet", "user-2.devnet", "user-4.devnet"]
        .iter()
        .map(|a| balance(&devnet, a))
        .collect();
    assert_eq!(now, before, "nothing paid before the approval");
    b.type_into("approve-token", TREASURER).await;
    b.click("approve-confirm").await;
    wait_js(
        &mut b,
        "document.getElementById('approve-form').classList.contains('hidden') \
         && document.getElementById('campaigns-result').classList.contains('ok')",
        "the approval",
    )
    .await;
    let approved = text_of(&mut b, "campaigns-result").await;
    assert!(
        approved.starts_with(&format!("Campaign {id} approved by treasurer")),
        "{approved}"
    );

    // Paid: the bar reaches 100 %, the campaign is done, the paid total reads in token units.
    let row = format!("document.querySelector('#campaigns-body tr[data-id=\"{id}\"]')");
    wait_js_within(
        &mut b,
        &format!(
            "(() => {{ const r = {row}; if (!r) return false; const p = r.querySelector('progress'); \
              return p.value === 3 && p.max === 3 && r.querySelector('.pct').textContent === '100 %' \
              && r.cells[2].textContent === 'done'; }})()"
        ),
        "the progress bar at 100 %",
        PAYING,
    )
    .await;
    assert_eq!(held_and_confirmed(&app.pool).await, (0, 3));
    wait_text(&mut b, "count-held", "0").await;
    let paid = b.eval(&format!("{row}.cells[4].textContent")).await;
    assert_eq!(paid, Value::String("15.75 FT".into()));

    // The claim of 12.5 FT in the recent claims: token units shown, raw units in the tooltip, and its
    // transaction linked to the explorer.
    let cell = wait_js(
        &mut b,
        "(() => { const td = [...document.querySelectorAll('#claims-body td')].find((c) => c.textContent === '12.5 FT'); \
          if (!td) return null; const a = td.parentElement.querySelector('a.tx'); \
          return a ? [td.title, a.getAttribute('href'), a.target, a.rel] : null; })()",
        "a claim shown as 12.5 FT with its transaction link",
    )
    .await;
    let mut conn = payouts_store::get(&app.pool).await.unwrap();
    let claim = list_claims(
        &mut conn,
        &ClaimFilter {
            receiver_id: Some("user-0.devnet".into()),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .remove(0);
    assert_eq!(claim.amount, Yocto(12 * ONE + ONE / 2));
    let hash = claim.current_tx_hash.clone().unwrap();
    assert_eq!(
        cell,
        serde_json::json!([
            "12500000000000000000000000 (smallest unit, 24 decimals) · token.devnet",
            EXPLORER.replace("{hash}", &hash),
            "_blank",
            "noopener noreferrer"
        ])
    );

    // Exactly once, on chain.
    let after: Vec<u128> = ["user-0.devnet", "user-2.devnet", "user-4.devnet"]
        .iter()
        .map(|a| balance(&devnet, a))
        .collect();
    let paid_each = [12 * ONE + ONE / 2, 3 * ONE, ONE / 4];
    for i in 0..3 {
        assert_eq!(after[i], before[i] + paid_each[i], "receiver {i}");
    }

    // A second campaign (JSON lines, below the threshold: no approval) to a receiver not registered with the
    // token, whom this distributor does not register: its row fails for good. Its failures download as CSV,
    // and a retry queues nothing.
    let small = dir.path().join("small.jsonl");
    std::fs::write(
        &small,
        "{\"receiver_id\": \"user-1.devnet\", \"amount\": \"1000\", \"external_id\": \"u1\"}\n",
    )
    .unwrap();
    b.set_files("camp-file", &[&small]).await;
    b.type_into("camp-name", "small-1").await;
    b.click("camp-dry").await;
    wait_js(
        &mut b,
        "document.getElementById('camp-result').textContent.startsWith('Dry run: 1 valid and 0 invalid') \
         && !document.getElementById('camp-upload').disabled",
        "the dry run of the second file",
    )
    .await;
    b.click("camp-upload").await;
    let second = wait_js(
        &mut b,
        "(() => { const m = document.getElementById('camp-result').textContent.match(/^Campaign (\\d+) stored: 1 rows\\.$/); \
          return m ? m[1] : null; })()",
        "the second campaign stored without approval",
    )
    .await;
    let second = second.as_str().unwrap().to_string();
    assert_ne!(second, id);
    wait_js_within(
        &mut b,
        &format!("document.getElementById('failures-{second}') !== null"),
        "the failed row of the second campaign",
        PAYING,
    )
    .await;
    let downloads = tempfile::tempdir().unwrap();
    b.allow_downloads(downloads.path()).await;
    b.click(&format!("failures-{second}")).await;
    let saved = downloads
        .path()
        .join(format!("campaign-{second}-failures.csv"));
    let csv_text =
        crate::support::eventually(crate::browser::WAIT, "the downloaded failures.csv", || {
            let saved = saved.clone();
            async move {
                std::fs::read_to_string(&saved)
                    .ok()
                    .filter(|t| t.lines().count() == 2)
            }
        })
        .await;
    let mut lines = csv_text.lines();
    assert_eq!(
        lines.next(),
        Some("row_key,receiver_id,amount,error,retryable")
    );
    let failed = lines.next().unwrap();
    assert!(
        failed.starts_with("u1,user-1.devnet,1000,") && failed.ends_with(",false"),
        "{failed}"
    );
    assert!(failed.contains("not registered"), "{failed}");
    b.click(&format!("retry-{second}")).await;
    wait_js(
        &mut b,
        "document.getElementById('campaigns-result').textContent.includes('0 of 1 failed rows queued again; 1 failed for good')",
        "the retry that queues nothing",
    )
    .await;

    // A third one above the threshold, rejected: the approver's token is still in the page's memory, its rows
    // fail unpaid, and no retry is offered.
    let big = dir.path().join("big-2.csv");
    std::fs::write(&big, "receiver_id,amount_tokens\nuser-0.devnet,11\n").unwrap();
    b.set_files("camp-file", &[&big]).await;
    b.type_into("camp-name", "big-2").await;
    b.click("camp-dry").await;
    wait_js(
        &mut b,
        "document.getElementById('camp-result').textContent.startsWith('Dry run: 1 valid') \
         && !document.getElementById('camp-upload').disabled",
        "the dry run of the third file",
    )
    .await;
    b.click("camp-upload").await;
    let third = wait_js(
        &mut b,
        "(() => { const m = document.getElementById('camp-result').textContent.match(/^Campaign (\\d+) stored: 1 rows; it waits/); \
          return m ? m[1] : null; })()",
        "the third campaign awaiting approval",
    )
    .await;
    let third = third.as_str().unwrap().to_string();
    wait_js(
        &mut b,
        &format!("document.getElementById('reject-{third}') !== null"),
        "the reject button",
    )
    .await;
    b.click(&format!("reject-{third}")).await;
    let remembered = b
        .eval("document.getElementById('approve-token').value")
        .await;
    assert_eq!(remembered, Value::String(TREASURER.into()));
    assert_eq!(text_of(&mut b, "approve-confirm").await, "Reject");
    b.click("approve-confirm").await;
    wait_js(
        &mut b,
        &format!(
            "document.getElementById('campaigns-result').textContent.startsWith('Campaign {third} rejected by treasurer (1 rows failed unpaid)') \
             && document.querySelector('#campaigns-body tr[data-id=\"{third}\"]').cells[2].textContent === 'rejected'"
        ),
        "the rejected campaign",
    )
    .await;
    assert_eq!(
        b.eval(&format!(
            "[document.getElementById('failures-{third}') !== null, document.getElementById('retry-{third}') === null]"
        ))
        .await,
        serde_json::json!([true, true])
    );
    assert_eq!(held_and_confirmed(&app.pool).await, (0, 3));
    assert_eq!(balance(&devnet, "user-0.devnet"), after[0]);

    let shot = screenshot_path_named("campaigns.png");
    b.screenshot(&shot).await;
    eprintln!("campaigns screenshot: {}", shot.display());
    stop.cancel();
    server.stop.cancel();
    distributor_task.await.unwrap().unwrap();
    let _ = indexer_task.await;
}
