//! `POST /send-ft`: success, idempotency, auth, and every kind of invalid input — each rejected with a clear
//! JSON error and no row written.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use payouts_store::claims::get_claim;
use payouts_store::{ClaimId, ClaimSource, ClaimStatus, Yocto};
use serde_json::json;

use crate::support::{app, app_with, MAX_AMOUNT, OPS, READER, SENDER, TOKEN_A, TOKEN_B};

fn body(receiver: &str, amount: &str) -> String {
    json!({"receiver_id": receiver, "amount": amount}).to_string()
}

#[tokio::test]
async fn a_new_request_creates_one_pending_manual_claim() {
    let app = app().await;
    let a = app
        .send(
            Some(SENDER),
            Some("key-1"),
            &json!({"receiver_id": "alice.devnet", "amount": "1500", "memo": "thanks"}).to_string(),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    let v = a.json();
    let id = v["id"].as_i64().unwrap();
    assert_eq!(v["status"], "pending");
    assert_eq!(v["source"], "manual");
    assert_eq!(v["amount"], "1500", "money is a string");
    assert_eq!(
        v["token"], TOKEN_A,
        "the first allowed token is the default"
    );
    assert_eq!(v["receiver_id"], "alice.devnet");
    assert_eq!(v["memo"], "thanks");
    assert_eq!(v["idempotency_key"], "key-1");
    assert!(v.get("request_digest").is_none(), "{v}");
    assert_eq!(a.headers["location"], format!("/claims/{id}").as_str());

    let mut conn = app.db.conn().await;
    let row = get_claim(&mut conn, ClaimId(id)).await.unwrap().unwrap();
    assert_eq!(row.source, ClaimSource::Manual);
    assert_eq!(row.status, ClaimStatus::Pending);
    assert_eq!(row.amount, Yocto(1500));
    assert_eq!(row.token_contract, TOKEN_A);
    assert_eq!(app.claim_rows().await, 1);

    // The other allowed token, and the largest amount allowed.
    let a = app
        .send(
            Some(OPS),
            Some("key-2"),
            &json!({"receiver_id": "bob.devnet", "amount": MAX_AMOUNT.to_string(), "token": TOKEN_B})
                .to_string(),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    assert_eq!(a.json()["token"], TOKEN_B);
    assert_eq!(a.json()["amount"], MAX_AMOUNT.to_string());
    assert_eq!(app.claim_rows().await, 2);
}

#[tokio::test]
async fn u128_max_round_trips_without_loss() {
    let app = app_with(|c| c.max_amount = Yocto(u128::MAX), |b| b).await;
    let a = app
        .send(
            Some(SENDER),
            Some("max"),
            &body("alice.devnet", &u128::MAX.to_string()),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    assert_eq!(a.json()["amount"], u128::MAX.to_string());
}

#[tokio::test]
async fn same_key_same_body_is_the_same_claim_and_another_body_conflicts() {
    let app = app().await;
    let first = app
        .send(Some(SENDER), Some("k"), &body("alice.devnet", "10"))
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let id = first.json()["id"].clone();

    // Same request again (also with the default token spelled out): 200, same claim.
    let again = app
        .send(Some(SENDER), Some("k"), &body("alice.devnet", "10"))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.json()["id"], id);
    let explicit = app
        .send(
            Some(SENDER),
            Some("k"),
            &json!({"receiver_id": "alice.devnet", "amount": "10", "token": TOKEN_A}).to_string(),
        )
        .await;
    assert_eq!(explicit.status, StatusCode::OK, "{}", explicit.text);
    assert_eq!(explicit.json()["id"], id);

    // Same key, different request: 409, nothing written.
    for other in [
        body("alice.devnet", "11"),
        body("bob.devnet", "10"),
        json!({"receiver_id": "alice.devnet", "amount": "10", "token": TOKEN_B}).to_string(),
        json!({"receiver_id": "alice.devnet", "amount": "10", "memo": "x"}).to_string(),
    ] {
        let c = app.send(Some(SENDER), Some("k"), &other).await;
        assert_eq!(c.status, StatusCode::CONFLICT, "{other}: {}", c.text);
        assert_eq!(c.code(), "idempotency_conflict");
        // The refusal names no claim.
        let id_text = id.to_string();
        assert!(!c.message().contains(&id_text), "{}", c.text);
    }
    assert_eq!(app.claim_rows().await, 1);
}

#[tokio::test]
async fn one_caller_cannot_learn_another_callers_claim_through_a_key() {
    let app = app().await;
    let mine = app
        .send(
            Some(SENDER),
            Some("shared-key"),
            &body("alice.devnet", "10"),
        )
        .await;
    assert_eq!(mine.status, StatusCode::ACCEPTED);
    let my_id = mine.json()["id"].as_i64().unwrap();

    // Another token, the same key and the same request: a claim of its own (202), never the first caller's
    // claim (200); its retry finds its own claim.
    let theirs = app
        .send(Some(OPS), Some("shared-key"), &body("alice.devnet", "10"))
        .await;
    assert_eq!(theirs.status, StatusCode::ACCEPTED, "{}", theirs.text);
    let v = theirs.json();
    assert_ne!(v["id"].as_i64().unwrap(), my_id);
    assert_eq!(v["idempotency_key"], "shared-key");
    let again = app
        .send(Some(OPS), Some("shared-key"), &body("alice.devnet", "10"))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.json()["id"], v["id"]);
    // A different request under its key: 409 naming no claim.
    let conflict = app
        .send(Some(OPS), Some("shared-key"), &body("mallory.devnet", "1"))
        .await;
    assert_eq!(conflict.status, StatusCode::CONFLICT, "{}", conflict.text);
    assert!(
        !conflict.text.contains(&my_id.to_string()),
        "{}",
        conflict.text
    );
    // The first caller's retry still finds its own claim.
    let retry = app
        .send(
            Some(SENDER),
            Some("shared-key"),
            &body("alice.devnet", "10"),
        )
        .await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(retry.json()["id"].as_i64(), Some(my_id));
    assert_eq!(app.claim_rows().await, 2);
}

#[tokio::test]
async fn bidi_and_invisible_memos_are_refused() {
    let app = app().await;
    for memo in [
        "pay\u{202E}gpj.exe",
        "zero\u{200B}width",
        "line\u{2028}separator",
        "para\u{2029}graph",
        "isolate\u{2066}x\u{2069}",
        "bom\u{FEFF}",
        "tag\u{E0041}",
    ] {
        let a = app
            .send(
                Some(SENDER),
                Some(&format!("memo-{}", memo.len())),
                &json!({"receiver_id": "alice.devnet", "amount": "1", "memo": memo}).to_string(),
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{memo:?}: {}", a.text);
        assert_eq!(a.code(), "invalid_memo");
    }
    // Ordinary non-ASCII text is fine.
    let ok = app
        .send(
            Some(SENDER),
            Some("memo-ok"),
            &json!({"receiver_id": "alice.devnet", "amount": "1", "memo": "Danke schön — 謝謝 🎉"})
                .to_string(),
        )
        .await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "{}", ok.text);
    assert_eq!(app.claim_rows().await, 1);
}

#[tokio::test]
async fn concurrent_retries_with_one_key_make_one_claim() {
    let app = app().await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let router = app.router.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::post("/send-ft")
                .header("authorization", format!("Bearer {SENDER}"))
                .header("idempotency-key", "race")
                .header("content-type", "application/json")
                .body(Body::from(body("alice.devnet", "5")))
                .unwrap();
            crate::support::call(&router, req).await
        }));
    }
    let mut created = 0;
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        let a = t.await.unwrap();
        match a.status {
            StatusCode::ACCEPTED => created += 1,
            StatusCode::OK => {}
            other => panic!("{other}: {}", a.text),
        }
        ids.insert(a.json()["id"].as_i64().unwrap());
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
    assert_eq!(app.claim_rows().await, 1);
}

#[tokio::test]
async fn auth_401_without_or_with_a_bad_token_and_403_without_the_send_scope() {
    let app = app().await;
    let b = body("alice.devnet", "1");
    let a = app.send(None, Some("a"), &b).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.code(), "unauthorized");
    assert_eq!(a.headers["www-authenticate"], "Bearer");

    for bad in [
        "wrong-token-0123456789abcdef",
        "",
        "ops-token-0123456789abcdeF",
        "ops-token-0123456789abcde",
    ] {
        let a = app.send(Some(bad), Some("a"), &b).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{bad:?}: {}", a.text);
        assert!(!a.text.contains(OPS), "the real token must never be echoed");
    }
    // Not a bearer scheme.
    let req = Request::post("/send-ft")
        .header("authorization", format!("Basic {OPS}"))
        .header("idempotency-key", "a")
        .header("content-type", "application/json")
        .body(Body::from(b.clone()))
        .unwrap();
    assert_eq!(app.call(req).await.status, StatusCode::UNAUTHORIZED);
    // Scheme is case-insensitive.
    let req = Request::post("/send-ft")
        .header("authorization", format!("bearer {SENDER}"))
        .header("idempotency-key", "case")
        .header("content-type", "application/json")
        .body(Body::from(b.clone()))
        .unwrap();
    assert_eq!(app.call(req).await.status, StatusCode::ACCEPTED);

    let a = app.send(Some(READER), Some("b"), &b).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.code(), "forbidden");
    assert!(a.message().contains("send"), "{}", a.text);
    assert_eq!(app.claim_rows().await, 1);
}

#[tokio::test]
async fn invalid_receivers_are_400_and_write_nothing() {
    let app = app().await;
    let long = "a".repeat(65);
    for (i, receiver) in [
        "",
        "a",
        "Alice.devnet",
        "alice..devnet",
        "alice devnet",
        ".alice",
        "alice.",
        "alice@devnet",
        "alice\u{0}.devnet",
        "алиса.near",
        long.as_str(),
    ]
    .into_iter()
    .enumerate()
    {
        let a = app
            .send(Some(SENDER), Some(&format!("r{i}")), &body(receiver, "1"))
            .await;
        assert_eq!(
            a.status,
            StatusCode::BAD_REQUEST,
            "{receiver:?}: {}",
            a.text
        );
        assert_eq!(a.code(), "invalid_receiver", "{receiver:?}");
        assert!(a.message().contains("receiver_id"), "{}", a.text);
    }
    // A receiver given as a number / null / missing.
    for (i, b) in [
        json!({"receiver_id": 5, "amount": "1"}),
        json!({"receiver_id": null, "amount": "1"}),
        json!({"amount": "1"}),
    ]
    .into_iter()
    .enumerate()
    {
        let a = app
            .send(Some(SENDER), Some(&format!("rj{i}")), &b.to_string())
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{b}: {}", a.text);
        assert_eq!(a.code(), "invalid_json");
    }
    assert_eq!(app.claim_rows().await, 0);
}

#[tokio::test]
async fn invalid_amounts_are_400_and_write_nothing() {
    let app = app().await;
    let forty = "1".repeat(40);
    let cases = [
        ("0", "invalid_amount", "more than 0"),
        ("-1", "invalid_amount", "digits 0-9"),
        ("1.5", "invalid_amount", "digits 0-9"),
        ("abc", "invalid_amount", "digits 0-9"),
        (forty.as_str(), "invalid_amount", "128 bits"),
        ("+1", "invalid_amount", "digits 0-9"),
        (" 1", "invalid_amount", "digits 0-9"),
        ("1 ", "invalid_amount", "digits 0-9"),
        ("1e3", "invalid_amount", "digits 0-9"),
        ("0x10", "invalid_amount", "digits 0-9"),
        ("1_000", "invalid_amount", "digits 0-9"),
        ("١", "invalid_amount", "digits 0-9"),
        ("", "invalid_amount", "empty"),
        (
            "1000000000000000000000000001",
            "amount_too_large",
            "max_amount",
        ),
    ];
    for (i, (amount, code, hint)) in cases.into_iter().enumerate() {
        let a = app
            .send(
                Some(SENDER),
                Some(&format!("a{i}")),
                &body("alice.devnet", amount),
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{amount:?}: {}", a.text);
        assert_eq!(a.code(), code, "{amount:?}");
        assert!(a.message().contains(hint), "{amount:?}: {}", a.text);
    }
    // Amounts as JSON numbers are refused: money is a string.
    for (i, raw) in [
        r#"{"receiver_id":"alice.devnet","amount":5}"#,
        r#"{"receiver_id":"alice.devnet","amount":1.5}"#,
        r#"{"receiver_id":"alice.devnet","amount":-1}"#,
        r#"{"receiver_id":"alice.devnet","amount":1e30}"#,
        r#"{"receiver_id":"alice.devnet","amount":null}"#,
        r#"{"receiver_id":"alice.devnet"}"#,
    ]
    .into_iter()
    .enumerate()
    {
        let a = app.send(Some(SENDER), Some(&format!("n{i}")), raw).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{raw}: {}", a.text);
        assert_eq!(a.code(), "invalid_json");
        assert!(a.message().contains("amount"), "{}", a.text);
    }
    assert_eq!(app.claim_rows().await, 0);
}

#[tokio::test]
async fn tokens_memos_keys_and_bodies_are_checked() {
    let app = app().await;
    let ok = body("alice.devnet", "1");

    let a = app
        .send(
            Some(SENDER),
            Some("t"),
            &json!({"receiver_id": "alice.devnet", "amount": "1", "token": "evil.devnet"})
                .to_string(),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.code(), "token_not_allowed");

    let long_memo = "m".repeat(257);
    for (i, memo) in [long_memo.as_str(), "line\nbreak", "nul\u{0}", "tab\t"]
        .into_iter()
        .enumerate()
    {
        let a = app
            .send(
                Some(SENDER),
                Some(&format!("m{i}")),
                &json!({"receiver_id": "alice.devnet", "amount": "1", "memo": memo}).to_string(),
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{memo:?}");
        assert_eq!(a.code(), "invalid_memo");
    }

    // Idempotency-Key: missing, empty, too long, spaces, non-ASCII.
    let a = app.send(Some(SENDER), None, &ok).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.code(), "missing_idempotency_key");
    let long_key = "k".repeat(129);
    for key in ["", long_key.as_str(), "has space"] {
        let a = app.send(Some(SENDER), Some(key), &ok).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{key:?}");
        assert_eq!(a.code(), "invalid_idempotency_key");
    }
    let req = Request::post("/send-ft")
        .header("authorization", format!("Bearer {SENDER}"))
        .header(
            "idempotency-key",
            axum::http::HeaderValue::from_bytes(b"k\xe9y").unwrap(),
        )
        .header("content-type", "application/json")
        .body(Body::from(ok.clone()))
        .unwrap();
    assert_eq!(app.call(req).await.code(), "invalid_idempotency_key");

    // Content-Type.
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/send-ft")
            .header("authorization", format!("Bearer {SENDER}"))
            .header("idempotency-key", "ct");
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let a = app.call(req.body(Body::from(ok.clone())).unwrap()).await;
        assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        assert_eq!(a.code(), "unsupported_media_type");
    }

    // Bad JSON, wrong shapes, unknown fields, empty body.
    for (i, raw) in [
        "",
        "{",
        "null",
        "[]",
        "\"x\"",
        r#"{"receiver_id":"alice.devnet","amount":"1","extra":1}"#,
        r#"{"receiver_id":"alice.devnet","amount":"1"} trailing"#,
    ]
    .into_iter()
    .enumerate()
    {
        let a = app.send(Some(SENDER), Some(&format!("j{i}")), raw).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{raw:?}: {}", a.text);
        assert_eq!(a.code(), "invalid_json", "{raw:?}");
    }
    assert_eq!(app.claim_rows().await, 0);
}

#[tokio::test]
async fn oversized_bodies_are_413_with_a_clear_message_and_no_row() {
    let app = app().await;
    let memo = "m".repeat(20 * 1024);
    let big = json!({"receiver_id": "alice.devnet", "amount": "1", "memo": memo}).to_string();
    let a = app.send(Some(SENDER), Some("big"), &big).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text);
    assert_eq!(a.code(), "payload_too_large");
    assert!(a.message().contains("16384 bytes"), "{}", a.text);
    // Without auth the answer is still JSON (auth is checked first: 401).
    let a = app.send(None, Some("big"), &big).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.claim_rows().await, 0);
}

#[tokio::test]
async fn no_allowed_tokens_means_manual_sends_are_refused() {
    let app = app_with(|c| c.allowed_tokens.clear(), |b| b).await;
    let a = app
        .send(Some(SENDER), Some("x"), &body("alice.devnet", "1"))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.code(), "token_not_allowed");
    assert_eq!(app.claim_rows().await, 0);
}

#[tokio::test]
async fn many_concurrent_sends_are_grouped_and_each_gets_its_own_claim() {
    let app = app_with(|c| c.send_workers = 2, |b| b).await;
    let mut tasks = Vec::new();
    for i in 0..300 {
        let router = app.router.clone();
        tasks.push(tokio::spawn(async move {
            // Every third request repeats the key of the one before it, with the same body.
            let k = if i % 3 == 2 { i - 1 } else { i };
            let req = Request::post("/send-ft")
                .header("authorization", format!("Bearer {SENDER}"))
                .header("idempotency-key", format!("many-{k}"))
                .header("content-type", "application/json")
                .body(Body::from(body("alice.devnet", &(1 + k).to_string())))
                .unwrap();
            (k, crate::support::call(&router, req).await)
        }));
    }
    let mut by_key = std::collections::BTreeMap::<i32, Vec<(StatusCode, i64)>>::new();
    for t in tasks {
        let (k, a) = t.await.unwrap();
        assert!(
            a.status == StatusCode::ACCEPTED || a.status == StatusCode::OK,
            "{}",
            a.text
        );
        assert_eq!(a.json()["amount"], (1 + k).to_string());
        by_key
            .entry(k)
            .or_default()
            .push((a.status, a.json()["id"].as_i64().unwrap()));
    }
    assert_eq!(by_key.len(), 200);
    for (k, answers) in &by_key {
        let created = answers
            .iter()
            .filter(|(s, _)| *s == StatusCode::ACCEPTED)
            .count();
        assert_eq!(created, 1, "key {k}: {answers:?}");
        assert!(
            answers.iter().all(|(_, id)| *id == answers[0].1),
            "key {k}: {answers:?}"
        );
    }
    assert_eq!(app.claim_rows().await, 200);
}

#[tokio::test]
async fn the_group_insert_reports_new_and_existing_rows_in_order() {
    use payouts_store::api_queries::insert_manual_claims;
    use payouts_store::claims::NewClaim;
    let app = app().await;
    let row = |key: &str, amount: u128| {
        NewClaim::manual(key, "digest", TOKEN_A, "alice.devnet", Yocto(amount), None)
    };
    let mut conn = app.db.conn().await;
    let first = insert_manual_claims(&mut conn, &[row("a", 1), row("b", 2), row("a", 1)])
        .await
        .unwrap();
    assert_eq!(first.len(), 3);
    assert!(first[0].1 && first[1].1 && !first[2].1, "{first:?}");
    assert_eq!(first[0].0.id, first[2].0.id);
    let second = insert_manual_claims(&mut conn, &[row("b", 2), row("c", 3)])
        .await
        .unwrap();
    assert!(!second[0].1 && second[1].1);
    assert_eq!(second[0].0.id, first[1].0.id);
    assert_eq!(second[1].0.amount, Yocto(3));
    assert!(insert_manual_claims(&mut conn, &[])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(app.claim_rows().await, 3);
}

#[tokio::test]
async fn a_send_may_opt_out_of_coalescing_and_the_claim_keeps_it() {
    let app = app().await;
    let off = json!({"receiver_id": "alice.devnet", "amount": "5", "coalesce": false}).to_string();
    let a = app.send(Some(SENDER), Some("own-1"), &off).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    assert_eq!(a.json()["coalesce"], false);
    let id = a.json()["id"].as_i64().unwrap();
    let mut conn = app.db.conn().await;
    assert!(
        !get_claim(&mut conn, ClaimId(id))
            .await
            .unwrap()
            .unwrap()
            .may_coalesce
    );
    // Omitted: coalescing allowed, and the same request without the field keeps its old digest.
    let a = app
        .send(Some(SENDER), Some("own-2"), &body("alice.devnet", "5"))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    assert_eq!(a.json()["coalesce"], true);
    let explicit =
        json!({"receiver_id": "alice.devnet", "amount": "5", "coalesce": true}).to_string();
    let same = app.send(Some(SENDER), Some("own-2"), &explicit).await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.text);
    // The same key with the opt-out flipped is another request.
    let flipped = app
        .send(Some(SENDER), Some("own-1"), &body("alice.devnet", "5"))
        .await;
    assert_eq!(flipped.status, StatusCode::CONFLICT, "{}", flipped.text);
    // Not a boolean: 400, nothing written.
    let bad = json!({"receiver_id": "alice.devnet", "amount": "5", "coalesce": "no"}).to_string();
    let a = app.send(Some(SENDER), Some("own-3"), &bad).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(app.claim_rows().await, 2);
    // The claim view's transfer is documented.
    let doc = app.get("/openapi.json").await.json();
    assert!(
        doc["components"]["schemas"]["TransferView"].is_object(),
        "{}",
        doc["components"]["schemas"]
    );
}
