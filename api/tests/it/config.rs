//! `[api]` settings and token loading: every problem names its key; secrets are never echoed.

use payouts_api::{ApiConfig, AppState, Error, Scope, TokenConfig};
use payouts_store::testdb::TestDb;
use payouts_store::Yocto;

fn with_token(t: TokenConfig) -> ApiConfig {
    ApiConfig {
        tokens: vec![t],
        ..ApiConfig::default()
    }
}

fn env_token(var: &str) -> TokenConfig {
    TokenConfig {
        name: "ops".into(),
        scopes: vec![Scope::Send],
        token_env: Some(var.into()),
        token_file: None,
    }
}

#[test]
fn defaults_are_valid_and_parse_from_json_like_toml() {
    assert_eq!(ApiConfig::default().validate(), Ok(()));
    let cfg: ApiConfig = serde_json::from_value(serde_json::json!({
        "listen": "0.0.0.0:9000",
        "allowed_tokens": ["token.near"],
        "max_amount": "5000",
        "tokens": [{"name": "ops", "scopes": ["send", "admin"], "token_env": "X"}],
    }))
    .unwrap();
    assert_eq!(cfg.max_amount, Yocto(5000));
    assert_eq!(cfg.tokens[0].scopes, vec![Scope::Send, Scope::Admin]);
    assert_eq!(cfg.validate(), Ok(()));
    // An env override turns the amount into an integer: accepted too.
    let cfg: ApiConfig = serde_json::from_value(serde_json::json!({"max_amount": 7})).unwrap();
    assert_eq!(cfg.max_amount, Yocto(7));
}

#[test]
fn unknown_keys_and_bad_values_are_refused() {
    let err = serde_json::from_value::<ApiConfig>(serde_json::json!({"listne": "x"})).unwrap_err();
    assert!(err.to_string().contains("listne"), "{err}");
    let err =
        serde_json::from_value::<ApiConfig>(serde_json::json!({"max_amount": "1.5"})).unwrap_err();
    assert!(err.to_string().contains("digits"), "{err}");
    let err = serde_json::from_value::<ApiConfig>(serde_json::json!({
        "tokens": [{"name": "a", "scopes": ["root"], "token_env": "X"}]
    }))
    .unwrap_err();
    assert!(err.to_string().contains("root"), "{err}");
    let err = serde_json::from_value::<ApiConfig>(serde_json::json!({
        "tokens": [{"name": "a", "scopes": ["send"], "token": "inline-secret"}]
    }))
    .unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");

    let cases: Vec<(ApiConfig, &str)> = vec![
        (
            ApiConfig {
                max_amount: Yocto(0),
                ..ApiConfig::default()
            },
            "api.max_amount",
        ),
        (
            ApiConfig {
                max_memo_chars: 0,
                ..ApiConfig::default()
            },
            "api.max_memo_chars",
        ),
        (
            ApiConfig {
                max_body_bytes: 10,
                ..ApiConfig::default()
            },
            "api.max_body_bytes",
        ),
        (
            ApiConfig {
                request_timeout_ms: 0,
                ..ApiConfig::default()
            },
            "api.request_timeout_ms",
        ),
        (
            ApiConfig {
                max_page_size: 0,
                ..ApiConfig::default()
            },
            "api.max_page_size",
        ),
        (
            ApiConfig {
                default_page_size: 1000,
                ..ApiConfig::default()
            },
            "api.default_page_size",
        ),
        (
            ApiConfig {
                allowed_tokens: vec!["Not Valid".into()],
                ..ApiConfig::default()
            },
            "api.allowed_tokens[0]",
        ),
        (
            ApiConfig {
                allowed_tokens: vec!["a.near".into(), "a.near".into()],
                ..ApiConfig::default()
            },
            "api.allowed_tokens[1]",
        ),
        (
            with_token(TokenConfig {
                token_env: None,
                ..env_token("X")
            }),
            "api.tokens[0]",
        ),
        (
            with_token(TokenConfig {
                token_file: Some("/x".into()),
                ..env_token("X")
            }),
            "api.tokens[0]",
        ),
        (
            with_token(TokenConfig {
                scopes: vec![],
                ..env_token("X")
            }),
            "api.tokens[0].scopes",
        ),
        (
            with_token(TokenConfig {
                name: "has space".into(),
                ..env_token("X")
            }),
            "api.tokens[0].name",
        ),
    ];
    for (cfg, key) in cases {
        let err = cfg.validate().unwrap_err();
        assert!(err.starts_with(key), "expected {key}: {err}");
    }
}

#[tokio::test]
async fn secrets_are_read_from_env_or_file_and_problems_name_the_key() {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let build = |cfg: ApiConfig| AppState::new(pool.clone(), cfg);

    // PATH is set, long and printable: a usable secret without touching the environment.
    assert!(build(with_token(env_token("PATH"))).is_ok());

    let msg = |r: Result<AppState, Error>| match r {
        Err(Error::Config(m)) => m,
        other => panic!("expected a config error, got {other:?}"),
    };
    let m = msg(build(with_token(env_token(
        "PAYOUTS_TEST_SURELY_UNSET_VAR_1234",
    ))));
    assert!(
        m.contains("api.tokens[0].token_env") && m.contains("PAYOUTS_TEST_SURELY_UNSET_VAR_1234"),
        "{m}"
    );

    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").unwrap();
    let file_token = |path: std::path::PathBuf| TokenConfig {
        token_env: None,
        token_file: Some(path),
        ..env_token("X")
    };
    let m = msg(build(with_token(file_token(short))));
    assert!(
        m.contains("api.tokens[0]") && m.contains("shorter than 16"),
        "{m}"
    );
    assert!(!m.contains("abc"), "the secret must not appear: {m}");

    let m = msg(build(with_token(file_token(dir.path().join("missing")))));
    assert!(m.contains("api.tokens[0].token_file"), "{m}");

    let good = dir.path().join("good");
    std::fs::write(&good, "  s3cret-s3cret-s3cret  \n").unwrap();
    let state = build(with_token(file_token(good.clone()))).unwrap();
    assert!(!format!("{state:?}").contains("s3cret"), "{state:?}");

    // Two entries with one secret are refused.
    let mut cfg = with_token(file_token(good.clone()));
    cfg.tokens.push(TokenConfig {
        name: "other".into(),
        ..file_token(good)
    });
    let m = msg(build(cfg));
    assert!(m.contains("api.tokens[1]"), "{m}");
}
