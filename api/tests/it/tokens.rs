//! `GET /tokens`: each allowed token's symbol and decimals as the chain (the devnet's `ft_metadata`) tells
//! them, a failed read tried again on the next request (never cached), and the explorer link pattern:
//! `api.explorer_tx_url` when set (checked at start-up: the error names the key), else by chain id.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;
use payouts_api::ApiConfig;
use payouts_devnet::{Devnet, DevnetConfig};
use serde_json::json;

use crate::support::{app_with, TOKEN_A, TOKEN_B};

async fn devnet_with_final_block() -> (payouts_devnet::DevnetHandle, tempfile::TempDir) {
    let (devnet, keys) = Devnet::start_for_tests(|_| {}).await.unwrap();
    // `ft_metadata` is read at the final block: wait until there is one.
    assert!(devnet.wait_for_height(3, Duration::from_secs(30)).await);
    (devnet, keys)
}

#[tokio::test]
async fn lists_symbols_and_decimals_from_the_chain() {
    let (devnet, _keys) = devnet_with_final_block().await;
    let app = app_with(|_| {}, |b| b.rpc_url(devnet.rpc_url())).await;
    let a = app.read("/tokens").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    // token.devnet is the devnet's NEP-141 token; usdc.devnet is allowed but no contract: no metadata.
    assert_eq!(
        a.json(),
        json!({
            "tokens": [
                {"contract": TOKEN_A, "symbol": "DEVT", "decimals": 24},
                {"contract": TOKEN_B, "symbol": null, "decimals": null},
            ],
            // The node says `devnet`: no public explorer.
            "explorer_tx_url": null,
        })
    );
    // A read like /status: no token, no answer.
    let anon = app.get("/tokens").await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED, "{}", anon.text);
    // Described in the OpenAPI document, as a read.
    let doc = app.get("/openapi.json").await.json();
    let op = &doc["paths"]["/tokens"]["get"];
    assert_eq!(op["security"], json!([{"bearer": []}]), "{op}");
    assert!(op["responses"]["401"].is_object(), "{op}");
    let list = &doc["components"]["schemas"]["TokenList"];
    assert!(list["properties"]["explorer_tx_url"].is_object(), "{list}");
    assert!(doc["components"]["schemas"]["TokenView"]["properties"]["decimals"].is_object());
}

#[tokio::test]
async fn the_indexer_rules_tokens_are_listed_after_the_allowed_ones() {
    let (devnet, _keys) = devnet_with_final_block().await;
    // The binary hands over the tokens of `[[indexer.rules]]` (a repeat is listed once).
    let app = app_with(
        |_| {},
        |b| {
            b.rpc_url(devnet.rpc_url())
                .rule_tokens([TOKEN_A, "heavy.devnet", "heavy.devnet"].map(String::from))
        },
    )
    .await;
    let a = app.read("/tokens").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(
        a.json()["tokens"],
        json!([
            {"contract": TOKEN_A, "symbol": "DEVT", "decimals": 24},
            {"contract": TOKEN_B, "symbol": null, "decimals": null},
            {"contract": "heavy.devnet", "symbol": "HEVT", "decimals": 24},
        ])
    );
}

#[tokio::test]
async fn a_failed_metadata_read_is_tried_again() {
    // A port nothing listens on yet: the first read fails.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let app = app_with(
        |c| c.rpc_timeout_ms = 500,
        |b| b.rpc_url(format!("http://{addr}")),
    )
    .await;
    let a = app.read("/tokens").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["tokens"][0]["decimals"], json!(null));

    let (devnet, _keys) = Devnet::start_for_tests(|c: &mut DevnetConfig| c.listen = addr)
        .await
        .unwrap();
    assert!(devnet.wait_for_height(3, Duration::from_secs(30)).await);
    let a = app.read("/tokens").await;
    assert_eq!(a.json()["tokens"][0]["decimals"], json!(24), "{}", a.text);
    assert_eq!(a.json()["tokens"][0]["symbol"], json!("DEVT"));
}

#[tokio::test]
async fn the_explorer_pattern_comes_from_the_config_or_the_chain_id() {
    let cases: [(Option<&str>, &str, Option<&str>); 5] = [
        (None, "mainnet", Some("https://nearblocks.io/txns/{hash}")),
        (
            None,
            "testnet",
            Some("https://testnet.nearblocks.io/txns/{hash}"),
        ),
        (None, "localnet", None),
        (Some(""), "mainnet", None),
        (
            Some("https://explorer.example/tx/{hash}?net=main"),
            "devnet",
            Some("https://explorer.example/tx/{hash}?net=main"),
        ),
    ];
    for (pattern, chain, want) in cases {
        let app = app_with(
            |c| c.explorer_tx_url = pattern.map(str::to_string),
            |b| b.chain_id(chain),
        )
        .await;
        let a = app.read("/tokens").await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(
            a.json()["explorer_tx_url"],
            json!(want),
            "{pattern:?} on {chain}"
        );
    }
}

#[test]
fn a_bad_explorer_pattern_is_a_config_error_naming_the_key() {
    for bad in [
        "ftp://explorer.example/{hash}",
        "https://explorer.example/txns/",
        "https://explorer.example/{hash}/{hash}",
        "https://{hash}.example/",
        "https:///{hash}",
        "https://explorer.example/{hash}\" onclick=\"x",
        "javascript:alert(1)//{hash}",
        "nearblocks.io/txns/{hash}",
    ] {
        let cfg = ApiConfig {
            explorer_tx_url: Some(bad.into()),
            ..ApiConfig::default()
        };
        let err = cfg.validate().unwrap_err();
        assert!(err.starts_with("api.explorer_tx_url: "), "{bad}: {err}");
    }
    for good in [
        "",
        "https://nearblocks.io/txns/{hash}",
        "http://127.0.0.1:3000/tx/{hash}",
    ] {
        let cfg = ApiConfig {
            explorer_tx_url: Some(good.into()),
            ..ApiConfig::default()
        };
        assert_eq!(cfg.validate(), Ok(()), "{good}");
    }
    // From the config file's form.
    let cfg: ApiConfig =
        serde_json::from_value(json!({"explorer_tx_url": "https://nearblocks.io/txns/{hash}"}))
            .unwrap();
    assert_eq!(
        cfg.explorer_tx_url.as_deref(),
        Some("https://nearblocks.io/txns/{hash}")
    );
}
