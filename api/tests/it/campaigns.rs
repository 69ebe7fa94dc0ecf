//! `POST /campaigns`: dry run writes nothing, errors refuse the file whole, `skip_invalid` stores the good
//! rows once, a re-upload pays nothing, a changed file under the same name is a 409, a large total is held.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use payouts_store::campaigns::rows::campaign_claims;
use payouts_store::claims::{count_by_status, update_claims, ClaimUpdate};
use payouts_store::{ClaimStatus, Yocto};

use crate::support::{app, app_with, Answer, App, APPROVER, READER, SENDER, TOKEN_A, TREASURER};

const FILE: &str = "receiver_id,amount,memo,external_id\n\
    alice.devnet,5,hello,\n\
    Bad Account,5,,\n\
    bob.devnet,-1,,\n\
    carol.devnet,7,,c1\n\
    carol.devnet,8,,c1\n";

async fn upload(app: &App, token: &str, query: &str, body: &str) -> Answer {
    app.call(
        Request::builder()
            .method(Method::POST)
            .uri(format!("/campaigns?{query}"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "text/csv")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

async fn by_status(app: &App) -> Vec<(ClaimStatus, i64)> {
    let mut conn = app.db.conn().await;
    let mut v: Vec<(ClaimStatus, i64)> = count_by_status(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    v.sort_by_key(|(s, _)| s.as_str());
    v
}

#[tokio::test]
async fn dry_run_lists_the_bad_rows_and_writes_nothing() {
    let app = app().await;
    let a = upload(&app, SENDER, "name=epoch-1&dry_run=true", FILE).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let v = a.json();
    let rows: Vec<(u64, String)> = v["errors"]
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
    assert_eq!(
        rows,
        [
            (3, "receiver_id".into()),
            (4, "amount".into()),
            (6, "external_id".into())
        ]
    );
    assert_eq!(v["totals"]["valid"], 2);
    assert_eq!(v["totals"]["invalid"], 3);
    assert_eq!(v["totals"]["amount"], "12");
    assert_eq!(v["file_digest"].as_str().unwrap().len(), 64);
    assert!(v["campaign"].is_null());
    assert_eq!(app.claim_rows().await, 0);

    // A real upload with errors is refused whole.
    let a = upload(&app, SENDER, "name=epoch-1", FILE).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    assert_eq!(app.claim_rows().await, 0);
}

#[tokio::test]
async fn good_rows_are_stored_once_and_a_changed_file_is_refused() {
    let app = app().await;
    let a = upload(&app, SENDER, "name=epoch-1&skip_invalid=true", FILE).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let v = a.json();
    assert_eq!(v["inserted"], 2);
    assert_eq!(v["campaign"]["status"], "uploaded");
    assert_eq!(v["campaign"]["created_by"], "sender");
    assert_eq!(v["campaign"]["token"], TOKEN_A);
    assert_eq!(v["campaign"]["claims"]["pending"], 2);
    assert_eq!(by_status(&app).await, [(ClaimStatus::Pending, 2)]);

    let again = upload(&app, SENDER, "name=epoch-1&skip_invalid=true", FILE).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.json()["inserted"], 0);
    assert_eq!(again.json()["campaign"]["id"], v["campaign"]["id"]);
    assert_eq!(app.claim_rows().await, 2);

    let changed = format!("{FILE}dave.devnet,1,,\n");
    let conflict = upload(&app, SENDER, "name=epoch-1&skip_invalid=true", &changed).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT, "{}", conflict.text);
    assert_eq!(conflict.code(), "campaign_name_taken");
    assert_eq!(app.claim_rows().await, 2);
}

#[tokio::test]
async fn a_total_above_the_threshold_is_held() {
    let app = app_with(
        |cfg| {
            cfg.approval_threshold.insert(TOKEN_A.into(), Yocto(10));
        },
        |b| b,
    )
    .await;
    let small = "receiver_id,amount\nalice.devnet,4\nbob.devnet,6\n";
    let a = upload(&app, SENDER, "name=small", small).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.json()["approval_required"], false);
    let big = "receiver_id,amount\nalice.devnet,5\nbob.devnet,6\n";
    let a = upload(&app, SENDER, "name=big", big).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.json()["campaign"]["status"], "awaiting_approval");
    assert_eq!(
        by_status(&app).await,
        [(ClaimStatus::Held, 2), (ClaimStatus::Pending, 2)]
    );
}

#[tokio::test]
async fn needs_the_send_scope_and_a_name() {
    let app = app().await;
    let a = upload(&app, READER, "name=x&dry_run=true", FILE).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    let a = upload(&app, SENDER, "dry_run=true", FILE).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    let a = upload(&app, SENDER, "name=x&token=evil.devnet", FILE).await;
    assert_eq!(a.code(), "token_not_allowed");
    let a = upload(&app, SENDER, "name=x", "reciever_id,amount\na.devnet,1\n").await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    assert_eq!(app.claim_rows().await, 0);
}

async fn post(app: &App, token: &str, path: &str) -> Answer {
    app.call(
        Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_second_token_approves_and_the_creator_cannot() {
    let app = app_with(
        |cfg| {
            cfg.approval_threshold.insert(TOKEN_A.into(), Yocto(10));
        },
        |b| b,
    )
    .await;
    let big = "receiver_id,amount\nalice.devnet,5\nbob.devnet,6\n";
    let a = upload(&app, APPROVER, "name=big", big).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let id = a.json()["campaign"]["id"].as_i64().unwrap();

    let own = post(&app, APPROVER, &format!("/admin/campaigns/{id}/approve")).await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "{}", own.text);
    let no_scope = post(&app, SENDER, &format!("/admin/campaigns/{id}/approve")).await;
    assert_eq!(no_scope.status, StatusCode::FORBIDDEN, "{}", no_scope.text);
    assert_eq!(by_status(&app).await, [(ClaimStatus::Held, 2)]);

    let ok = post(&app, TREASURER, &format!("/admin/campaigns/{id}/approve")).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.json()["claims_changed"], 2);
    assert_eq!(ok.json()["campaign"]["approved_by"], "treasurer");
    assert_eq!(by_status(&app).await, [(ClaimStatus::Pending, 2)]);

    let twice = post(&app, TREASURER, &format!("/admin/campaigns/{id}/reject")).await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.text);
    let missing = post(&app, TREASURER, "/admin/campaigns/999/approve").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);

    let view = app.read(&format!("/campaigns/{id}")).await;
    assert_eq!(view.status, StatusCode::OK, "{}", view.text);
    let v = view.json();
    assert_eq!(v["status"], "approved");
    assert_eq!(v["approved_by"], "treasurer");
    assert_eq!(v["claims"]["pending"], 2);
    assert_eq!(v["amount_total"], "11");
}

#[tokio::test]
async fn campaigns_are_listed_newest_first_with_their_progress() {
    let app = app_with(
        |cfg| {
            cfg.approval_threshold.insert(TOKEN_A.into(), Yocto(10));
        },
        |b| b,
    )
    .await;
    let mut ids = Vec::new();
    for (i, body) in [
        "receiver_id,amount\nalice.devnet,4\nBad Id,1\n",
        "receiver_id,amount\nalice.devnet,5\nbob.devnet,6\n",
        "receiver_id,amount\ncarol.devnet,1\n",
    ]
    .iter()
    .enumerate()
    {
        let a = upload(&app, SENDER, &format!("name=c{i}&skip_invalid=true"), body).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        ids.push(a.json()["campaign"]["id"].as_i64().unwrap());
    }
    // The first campaign's only claim fails (as the distributor would record a refused transfer).
    {
        let mut conn = app.db.conn().await;
        let claims = campaign_claims(&mut conn, ids[0], ClaimStatus::Pending, None, 10)
            .await
            .unwrap();
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].row_key, "#2");
        let ids: Vec<_> = claims.iter().map(|c| c.id).collect();
        update_claims(
            &mut conn,
            &ids,
            ClaimStatus::Pending,
            ClaimUpdate::Fail { error: "refused" },
        )
        .await
        .unwrap();
    }

    let page = app.read("/campaigns?limit=2").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let v = page.json();
    let got: Vec<i64> = v["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, [ids[2], ids[1]]);
    let held = &v["campaigns"][1];
    assert_eq!(held["status"], "awaiting_approval");
    assert_eq!(held["approval_required"], true);
    assert_eq!(held["claims"]["held"], 2);
    assert_eq!(held["rows_valid"], 2);
    assert_eq!(held["rows_paid"], 0);
    assert_eq!(held["paid_total"], "0");
    assert_eq!(held["created_by"], "sender");
    let cursor = v["next_cursor"].as_str().unwrap().to_string();

    let rest = app
        .read(&format!("/campaigns?limit=2&before={cursor}"))
        .await;
    assert_eq!(rest.status, StatusCode::OK, "{}", rest.text);
    let v = rest.json();
    assert!(v["next_cursor"].is_null(), "{v}");
    let done = &v["campaigns"][0];
    assert_eq!(done["id"], ids[0]);
    // Every claim settled: done, computed on read.
    assert_eq!(done["status"], "done");
    assert_eq!(done["rows_total"], 2);
    assert_eq!(done["rows_invalid"], 1);
    assert_eq!(done["rows_valid"], 1);
    assert_eq!(done["rows_paid"], 0);
    assert_eq!(done["paid_total"], "0");
    assert_eq!(done["failed"], 1);
    assert_eq!(done["claims"]["failed"], 1);
    let one = app.read(&format!("/campaigns/{}", ids[0])).await.json();
    assert_eq!(&one, done);

    for bad in [
        "/campaigns?limit=0",
        "/campaigns?before=x",
        "/campaigns?what=1",
    ] {
        let a = app.read(bad).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {}", a.text);
    }
    assert_eq!(
        app.read("/campaigns/77").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn amount_tokens_use_the_decimals_the_chain_reports() {
    let (devnet, _keys) = payouts_devnet::Devnet::start_for_tests(|_| {})
        .await
        .unwrap();
    // `ft_metadata` is read at the final block: wait until there is one.
    assert!(
        devnet
            .wait_for_height(3, std::time::Duration::from_secs(30))
            .await
    );
    let app = app_with(|_| {}, |b| b.rpc_url(devnet.rpc_url())).await;
    let file = "receiver_id,amount_tokens\n\
        alice.devnet,12.5\n\
        bob.devnet,0.0000000000000000000000001\n";
    let a = upload(&app, SENDER, "name=t&dry_run=true", file).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let v = a.json();
    // token.devnet has 24 decimals.
    assert_eq!(v["totals"]["amount"], "12500000000000000000000000");
    assert_eq!(v["errors"][0]["row"], 3);
    assert_eq!(v["errors"][0]["field"], "amount_tokens");
    assert!(
        v["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("25 decimals"),
        "{v}"
    );
    assert_eq!(app.claim_rows().await, 0);
}

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
async fn the_openapi_document_describes_the_campaign_routes() {
    let app = app().await;
    let doc = app.get("/openapi.json").await.json();
    let paths = &doc["paths"];
    for (path, method) in [
        ("/campaigns", "get"),
        ("/campaigns", "post"),
        ("/campaigns/{id}", "get"),
        ("/campaigns/{id}/failures.csv", "get"),
        ("/campaigns/{id}/retry-failed", "post"),
        ("/admin/campaigns/{id}/approve", "post"),
        ("/admin/campaigns/{id}/reject", "post"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} undocumented"
        );
    }
    let summary = &doc["components"]["schemas"]["CampaignSummary"]["properties"];
    for field in [
        "id",
        "name",
        "kind",
        "token",
        "status",
        "approval_required",
        "created_by",
        "created_at",
        "approved_by",
        "approved_at",
        "rejected_by",
        "rejected_at",
        "reject_reason",
        "rows_total",
        "rows_invalid",
        "rows_valid",
        "rows_paid",
        "amount_total",
        "paid_total",
        "failed",
        "claims",
    ] {
        assert!(
            summary[field].is_object(),
            "CampaignSummary.{field} undocumented"
        );
    }
    assert_eq!(summary["amount_total"]["type"], "string");
    let by_status = &doc["components"]["schemas"]["ClaimsByStatus"]["properties"];
    for s in ["held", "pending", "submitted", "confirmed", "failed"] {
        assert!(by_status[s].is_object(), "{s}");
    }
    // Reads of campaigns follow the read rule; the list's cursor and limit are bounded like /claims'.
    let list = &paths["/campaigns"]["get"];
    assert!(list["responses"]["429"].is_object());
    let limit = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert!(limit["schema"]["pattern"].is_string(), "{limit}");
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
