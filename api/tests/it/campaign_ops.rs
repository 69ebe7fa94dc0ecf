//! Campaigns after the upload: failures as CSV and `retry-failed`, a single send held for approval, the
//! chain checks of a dry run (registrations, the treasury's balance), a rejection's reason.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use payouts_store::campaigns::rows::campaign_claims;
use payouts_store::claims::{update_claims, ClaimUpdate};
use payouts_store::{ClaimStatus, Yocto};

use crate::campaigns::{by_status, post, upload};
use crate::support::{app, app_with, APPROVER, READER, SENDER, TOKEN_A, TREASURER};

#[tokio::test]
async fn failures_are_a_safe_csv_and_only_retryable_ones_go_back() {
    let app = app().await;
    let file = "receiver_id,amount,external_id\n\
        alice.devnet,1,a\n\
        bob.devnet,2,=HYPERLINK(x)\n\
        carol.devnet,3,c\n\
        dave.devnet,4,d\n";
    let a = upload(&app, SENDER, "name=f", file).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let id = a.json()["campaign"]["id"].as_i64().unwrap();
    let gave_up = format!(
        "{}12 transient failures; last: Smart contract panicked: The account doesn't have enough balance",
        payouts_store::retry::GAVE_UP_PREFIX
    );
    {
        let mut conn = app.db.conn().await;
        let claims = campaign_claims(&mut conn, id, ClaimStatus::Pending, None, 10)
            .await
            .unwrap();
        let errors = [
            gave_up.as_str(),
            "-1+1, \"quoted\"",
            "Smart contract panicked: The amount should be a positive number",
            gave_up.as_str(),
        ];
        for (c, error) in claims.iter().zip(errors) {
            update_claims(
                &mut conn,
                &[c.id],
                ClaimStatus::Pending,
                ClaimUpdate::Fail { error },
            )
            .await
            .unwrap();
        }
    }
    let csv = app.read(&format!("/campaigns/{id}/failures.csv")).await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.text);
    let expected = format!(
        "row_key,receiver_id,amount,error,retryable\n\
         a,alice.devnet,1,{gave_up},true\n\
         '=HYPERLINK(x),bob.devnet,2,\"'-1+1, \"\"quoted\"\"\",false\n\
         c,carol.devnet,3,Smart contract panicked: The amount should be a positive number,false\n\
         d,dave.devnet,4,{gave_up},true\n"
    );
    // Settled: every claim failed. Read twice (the second from the settled-counts cache).
    for _ in 0..2 {
        let v = app.read(&format!("/campaigns/{id}")).await.json();
        assert_eq!(v["status"], "done", "{v}");
        assert_eq!(v["failed"], 4);
    }
    assert_eq!(csv.text, expected);
    assert_eq!(
        app.read("/campaigns/99/failures.csv").await.status,
        StatusCode::NOT_FOUND
    );

    let no_scope = post(&app, READER, &format!("/campaigns/{id}/retry-failed")).await;
    assert_eq!(no_scope.status, StatusCode::FORBIDDEN, "{}", no_scope.text);
    let r = post(&app, SENDER, &format!("/campaigns/{id}/retry-failed")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    assert_eq!(
        (
            &v["failed"],
            &v["requeued"],
            &v["not_retryable"],
            &v["unsafe_to_retry"]
        ),
        (&4.into(), &2.into(), &2.into(), &0.into()),
        "{v}"
    );
    assert_eq!(v["campaign"]["claims"]["pending"], 2);
    assert_eq!(v["campaign"]["claims"]["failed"], 2);
    // The cache never hides the move: the campaign is running again.
    let v = app.read(&format!("/campaigns/{id}")).await.json();
    assert_eq!(v["status"], "running", "{v}");
    assert_eq!(v["claims"]["pending"], 2);
    // Nothing retryable is left: a second call re-queues nothing.
    let again = post(&app, SENDER, &format!("/campaigns/{id}/retry-failed")).await;
    assert_eq!(again.json()["requeued"], 0);
}

#[tokio::test]
async fn a_single_send_above_its_threshold_waits_for_a_second_token() {
    let app = app_with(
        |cfg| {
            cfg.single_approval_threshold = Some(Yocto(100));
        },
        |b| b,
    )
    .await;
    let small = app
        .send(
            Some(APPROVER),
            Some("k0"),
            r#"{"receiver_id":"alice.devnet","amount":"100"}"#,
        )
        .await;
    assert_eq!(small.status, StatusCode::ACCEPTED, "{}", small.text);
    assert_eq!(small.json()["status"], "pending");

    let body = r#"{"receiver_id":"bob.devnet","amount":"101","memo":"big"}"#;
    let big = app.send(Some(APPROVER), Some("k1"), body).await;
    assert_eq!(big.status, StatusCode::ACCEPTED, "{}", big.text);
    let v = big.json();
    assert_eq!(v["status"], "awaiting_approval");
    assert_eq!(v["amount"], "101");
    let campaign = v["campaign_id"].as_i64().unwrap();
    let again = app.send(Some(APPROVER), Some("k1"), body).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.json()["id"], v["id"]);
    assert_eq!(again.json()["campaign_id"], campaign);
    let other = app
        .send(
            Some(APPROVER),
            Some("k1"),
            r#"{"receiver_id":"bob.devnet","amount":"102"}"#,
        )
        .await;
    assert_eq!(other.status, StatusCode::CONFLICT, "{}", other.text);
    // A key first used below the threshold keeps its claim.
    let reuse = app
        .send(
            Some(APPROVER),
            Some("k0"),
            r#"{"receiver_id":"alice.devnet","amount":"500"}"#,
        )
        .await;
    assert_eq!(reuse.status, StatusCode::CONFLICT, "{}", reuse.text);
    assert_eq!(
        by_status(&app).await,
        [(ClaimStatus::Held, 1), (ClaimStatus::Pending, 1)]
    );

    let view = app.read(&format!("/campaigns/{campaign}")).await.json();
    assert_eq!(view["kind"], "send");
    assert_eq!(view["status"], "awaiting_approval");
    assert_eq!(view["amount_total"], "101");
    assert_eq!(view["claims"]["held"], 1);
    let own = post(
        &app,
        APPROVER,
        &format!("/admin/campaigns/{campaign}/approve"),
    )
    .await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "{}", own.text);
    let ok = post(
        &app,
        TREASURER,
        &format!("/admin/campaigns/{campaign}/approve"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(by_status(&app).await, [(ClaimStatus::Pending, 2)]);
    let claim = app.read(&format!("/claims/{}", v["id"])).await.json();
    assert_eq!(claim["status"], "pending");
    // After approval a retry shows the claim as it is.
    let after = app.send(Some(APPROVER), Some("k1"), body).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.text);
    assert_eq!(after.json()["status"], "pending");
}

#[tokio::test]
async fn dry_run_asks_the_chain_about_registrations_and_the_treasury_balance() {
    let (devnet, _keys) = payouts_devnet::Devnet::start_for_tests(|_| {})
        .await
        .unwrap();
    assert!(
        devnet
            .wait_for_height(3, std::time::Duration::from_secs(30))
            .await
    );
    let url = devnet.rpc_url();
    // The devnet registers users with an even number with token.devnet.
    let file = "receiver_id,amount\n\
        user-0.devnet,5\n\
        user-1.devnet,6\n\
        user-2.devnet,7\n\
        user-1.devnet,8\n\
        user-3.devnet,9\n";
    let app = app_with(
        |_| {},
        |b| {
            b.rpc_url(url.clone())
                .distributor_registers(false)
                .treasury("treasury.devnet")
        },
    )
    .await;
    let a = upload(&app, SENDER, "name=chain&dry_run=true", file).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let v = a.json();
    let rows: Vec<(u64, String)> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap(),
                e["field"].as_str().unwrap().into(),
            )
        })
        .collect();
    let field = || "receiver_id".to_string();
    assert_eq!(rows, [(3, field()), (5, field()), (6, field())], "{v}");
    assert!(v["errors"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("not registered"));
    assert_eq!(v["totals"]["valid"], 2);
    assert_eq!(v["totals"]["amount"], "12");
    assert_eq!(v["chain"]["registration_checked"], true);
    assert_eq!(v["chain"]["unregistered_receivers"], 2);
    assert_eq!(v["chain"]["covered"], true);
    let balance: u128 = v["chain"]["treasury_balance"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(balance > 12);
    // The real upload skips the same rows.
    let a = upload(&app, SENDER, "name=chain&skip_invalid=true", file).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.json()["inserted"], 2);

    // The distributor registers receivers: no registration check. A treasury without the tokens.
    let poor = app_with(
        |_| {},
        |b| {
            b.rpc_url(url.clone())
                .distributor_registers(true)
                .treasury("user-0.devnet")
        },
    )
    .await;
    let v = upload(&poor, SENDER, "name=poor&dry_run=true", file)
        .await
        .json();
    // Only the repeated receiver (without external_ids) is refused now.
    assert_eq!(v["errors"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["errors"][0]["row"], 5);
    assert_eq!(v["chain"]["registration_checked"], false);
    assert_eq!(v["chain"]["treasury_balance"], "0");
    assert_eq!(v["chain"]["covered"], false);

    // No RPC answer: a clear error, never "ok", and nothing written.
    let blind = app_with(
        |_| {},
        |b| b.rpc_url("http://127.0.0.1:9").distributor_registers(false),
    )
    .await;
    let a = upload(&blind, SENDER, "name=blind&skip_invalid=true", file).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text);
    assert_eq!(a.code(), "chain_check_failed");
    assert_eq!(blind.claim_rows().await, 0);
}

#[tokio::test]
async fn a_rejection_records_its_reason_and_fails_the_held_claims() {
    let app = app_with(
        |cfg| {
            cfg.approval_threshold.insert(TOKEN_A.into(), Yocto(10));
        },
        |b| b,
    )
    .await;
    let big = "receiver_id,amount\nalice.devnet,5\nbob.devnet,6\n";
    let id = upload(&app, SENDER, "name=big", big).await.json()["campaign"]["id"]
        .as_i64()
        .unwrap();
    let reject = |body: &'static str| {
        Request::builder()
            .method(Method::POST)
            .uri(format!("/admin/campaigns/{id}/reject"))
            .header("authorization", format!("Bearer {TREASURER}"))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    let bad = app.call(reject(r#"{"reason":"a\nb"}"#)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    let unknown = app.call(reject(r#"{"why":"x"}"#)).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.text);
    let ok = app.call(reject(r#"{"reason":"over budget"}"#)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let v = ok.json();
    assert_eq!(v["claims_changed"], 2);
    assert_eq!(v["campaign"]["status"], "rejected");
    assert_eq!(v["campaign"]["rejected_by"], "treasurer");
    assert_eq!(v["campaign"]["reject_reason"], "over budget");
    assert_eq!(v["campaign"]["claims"]["failed"], 2);
    assert_eq!(by_status(&app).await, [(ClaimStatus::Failed, 2)]);
    // Never paid, never retried.
    let retry = post(&app, SENDER, &format!("/campaigns/{id}/retry-failed")).await;
    assert_eq!(retry.status, StatusCode::CONFLICT, "{}", retry.text);
    assert_eq!(retry.code(), "campaign_rejected");
    let csv = app
        .read(&format!("/campaigns/{id}/failures.csv"))
        .await
        .text;
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| l.ends_with(",false") && l.contains("over budget")),
        "{csv}"
    );
}

/// Time of a dry run of a large file with the chain checks on (registration and balance): run alone with
/// `cargo test -p payouts-api --test it large_dry_run_with_chain_checks -- --ignored --nocapture`
/// (`CAMPAIGN_ROWS`, default 1,000,000; 1,000 distinct receivers, the devnet's users).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn large_dry_run_with_chain_checks() {
    let n: usize = std::env::var("CAMPAIGN_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let (devnet, _keys) = payouts_devnet::Devnet::start_for_tests(|_| {})
        .await
        .unwrap();
    assert!(
        devnet
            .wait_for_height(3, std::time::Duration::from_secs(30))
            .await
    );
    let url = devnet.rpc_url();
    let app = app_with(
        |cfg| cfg.campaign_max_bytes = 1 << 30,
        |b| {
            b.rpc_url(url.clone())
                .distributor_registers(false)
                .treasury("treasury.devnet")
        },
    )
    .await;
    let mut file = String::from("receiver_id,amount,external_id\n");
    for i in 0..n {
        file.push_str(&format!("user-{}.devnet,{},e{i}\n", i % 1000, 1 + i % 97));
    }
    let started = std::time::Instant::now();
    let a = upload(&app, SENDER, "name=large&dry_run=true", &file).await;
    let took = started.elapsed();
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{}",
        &a.text[..a.text.len().min(500)]
    );
    let v = a.json();
    assert_eq!(v["chain"]["unregistered_receivers"], 500);
    eprintln!(
        "{n} rows ({} MB): dry run with chain checks in {took:?} ({:.0} rows/s); invalid {}",
        file.len() / 1_000_000,
        n as f64 / took.as_secs_f64(),
        v["totals"]["invalid"]
    );
}

#[tokio::test]
async fn file_campaigns_cannot_take_a_held_sends_name() {
    let app = app_with(
        |cfg| {
            cfg.single_approval_threshold = Some(Yocto(100));
        },
        |b| b,
    )
    .await;
    let file = "receiver_id,amount\nalice.devnet,1\n";
    let a = upload(&app, SENDER, "name=send%20approver%20k9", file).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(a.code(), "invalid_name");
    // The held send under that key is unaffected.
    let held = app
        .send(
            Some(APPROVER),
            Some("k9"),
            r#"{"receiver_id":"bob.devnet","amount":"500"}"#,
        )
        .await;
    assert_eq!(held.status, StatusCode::ACCEPTED, "{}", held.text);
    assert_eq!(held.json()["status"], "awaiting_approval");
    let doc = app.get("/openapi.json").await.json();
    let name = doc["paths"]["/campaigns"]["post"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "name")
        .unwrap()["schema"]["pattern"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(name.starts_with("^(?!\\s*send )"), "{name}");
}
