//! Unit tests of the pool's pure parts: URL redaction, scrubbing, weights, rest.
use super::endpoint::NoAnswer;
use super::*;

#[test]
fn urls_lose_credentials_and_queries() {
    assert_eq!(
        redact_url("https://user:pw@rpc.example.com/v1/?apikey=S3CRET#x"),
        "https://rpc.example.com/v1"
    );
    assert_eq!(redact_url("http://127.0.0.1:3030"), "http://127.0.0.1:3030");
    assert_eq!(redact_url("nonsense"), "<invalid url>");
}

#[test]
fn messages_are_scrubbed_of_url_query_userinfo_and_header_values() {
    std::env::set_var("RPC_POOL_UNIT_KEY", "Bearer hdr-S3CRET-123");
    let mut cfg =
        RpcEndpointConfig::new("https://alice:pw-S3CRET@rpc.example.com/?apikey=q-S3CRET-1&x=1");
    cfg.headers_env
        .insert("Authorization".into(), "RPC_POOL_UNIT_KEY".into());
    let e = Endpoint::build(0, &cfg).unwrap();
    assert_eq!(e.name(), "https://rpc.example.com");
    let raw = format!(
        "error sending request for url ({}): header Bearer hdr-S3CRET-123, token hdr-S3CRET-123, pw-S3CRET, q-S3CRET-1",
        cfg.url
    );
    let shown = e.scrub(&raw);
    assert!(!shown.contains("S3CRET"), "{shown}");
    assert!(shown.contains("https://rpc.example.com"), "{shown}");
}

#[test]
fn bad_configs_are_refused_without_showing_secrets() {
    assert_eq!(RpcPool::new(&[]).unwrap_err(), RpcConfigError::Empty);
    let err =
        RpcPool::new(&[RpcEndpointConfig::new("ftp://x.example/?apikey=S3CRET")]).unwrap_err();
    assert!(!err.to_string().contains("S3CRET"), "{err}");
    let mut c = RpcEndpointConfig::new("https://x.example");
    c.headers_env
        .insert("x-api-key".into(), "RPC_POOL_UNIT_UNSET_VAR".into());
    assert!(matches!(
        RpcPool::new(&[c]).unwrap_err(),
        RpcConfigError::MissingEnv { .. }
    ));
    let same = RpcEndpointConfig::new("https://x.example/?k=1");
    let err = RpcPool::new(&[same.clone(), same]).unwrap_err();
    assert!(matches!(err, RpcConfigError::DuplicateName(_)));
}

#[test]
fn reads_rotate_by_weight_and_skip_resting_endpoints() {
    let mut a = RpcEndpointConfig::new("http://a.example");
    a.weight = 2;
    let b = RpcEndpointConfig::new("http://b.example");
    let pool = RpcPool::new(&[a, b]).unwrap();
    let firsts: Vec<usize> = (0..6).map(|_| pool.order()[0]).collect();
    assert_eq!(firsts.iter().filter(|&&i| i == 0).count(), 4);
    pool.endpoints[0].failed(&NoAnswer {
        message: "HTTP 429".into(),
        retry_after: Some(Duration::from_secs(5)),
        throttled: true,
    });
    for _ in 0..4 {
        assert_eq!(pool.order(), vec![1, 0]);
    }
    let s = pool.snapshot();
    assert!(!s[0].healthy && s[0].throttled == 1 && s[1].healthy);
}
