//! Read-only RPC methods as the real client sees them.

use near_jsonrpc_client::methods;
use near_jsonrpc_primitives::types::query::{QueryResponseKind, RpcQueryError};
use near_primitives::types::{BlockId, BlockReference, Finality};
use near_primitives::views::{AccessKeyPermissionView, QueryRequest};

use crate::common::{id, start};

#[tokio::test]
async fn views_status_blocks_and_config() {
    let net = start().await;
    let c = &net.client;

    let status = c.call(methods::status::RpcStatusRequest).await.unwrap();
    assert_eq!(status.chain_id, "devnet");
    assert_eq!(status.sync_info.earliest_block_height, Some(1));

    // view_access_key on a treasury key: full access, nonce 0.
    let signers = net.handle.treasury_signers();
    assert_eq!(signers.len(), 8);
    let key = c
        .call(methods::query::RpcQueryRequest {
            block_reference: BlockReference::Finality(Finality::Final),
            request: QueryRequest::ViewAccessKey {
                account_id: id("treasury.devnet"),
                public_key: signers[3].public_key(),
            },
        })
        .await
        .unwrap();
    match key.kind {
        QueryResponseKind::AccessKey(k) => {
            assert_eq!(k.nonce, 0);
            assert_eq!(k.permission, AccessKeyPermissionView::FullAccess);
        }
        other => panic!("{other:?}"),
    }

    // A missing key is the legacy "successful error" the client turns into UnknownAccessKey.
    let other_key =
        near_crypto::SecretKey::from_seed(near_crypto::KeyType::ED25519, "nobody").public_key();
    let err = c
        .call(methods::query::RpcQueryRequest {
            block_reference: BlockReference::Finality(Finality::None),
            request: QueryRequest::ViewAccessKey {
                account_id: id("treasury.devnet"),
                public_key: other_key.clone(),
            },
        })
        .await
        .unwrap_err();
    match err.handler_error() {
        Some(RpcQueryError::UnknownAccessKey { public_key, .. }) => {
            assert_eq!(public_key, &other_key)
        }
        other => panic!("{other:?} / {err:?}"),
    }

    // The key list, the account, an unknown account.
    let list = c
        .call(methods::query::RpcQueryRequest {
            block_reference: BlockReference::Finality(Finality::None),
            request: QueryRequest::ViewAccessKeyList {
                account_id: id("treasury.devnet"),
            },
        })
        .await
        .unwrap();
    assert!(matches!(list.kind, QueryResponseKind::AccessKeyList(l) if l.keys.len() == 8));
    let account = c
        .call(methods::query::RpcQueryRequest {
            block_reference: BlockReference::Finality(Finality::None),
            request: QueryRequest::ViewAccount {
                account_id: id("user-5.devnet"),
            },
        })
        .await
        .unwrap();
    assert!(matches!(account.kind, QueryResponseKind::ViewAccount(a) if a.amount.as_near() == 100));
    let err = c
        .call(methods::query::RpcQueryRequest {
            block_reference: BlockReference::Finality(Finality::None),
            request: QueryRequest::ViewAccount {
                account_id: id("ghost.devnet"),
            },
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.handler_error(),
            Some(RpcQueryError::UnknownAccount { .. })
        ),
        "{err:?}"
    );

    // Views of the token.
    let treasury_balance = net.ft_balance_rpc(&id("treasury.devnet")).await;
    assert_eq!(
        Some(treasury_balance),
        net.handle.ft_balance(&id("treasury.devnet"))
    );
    let call = |method: &str, args: serde_json::Value| methods::query::RpcQueryRequest {
        block_reference: BlockReference::Finality(Finality::None),
        request: QueryRequest::CallFunction {
            account_id: id("token.devnet"),
            method_name: method.into(),
            args: args.to_string().into_bytes().into(),
        },
    };
    let storage = c
        .call(call(
            "storage_balance_of",
            serde_json::json!({"account_id": "user-1.devnet"}),
        ))
        .await
        .unwrap();
    assert!(matches!(storage.kind, QueryResponseKind::CallResult(r) if r.result == b"null"));
    let meta = c
        .call(call("ft_metadata", serde_json::json!({})))
        .await
        .unwrap();
    match meta.kind {
        QueryResponseKind::CallResult(r) => {
            let v: serde_json::Value = serde_json::from_slice(&r.result).unwrap();
            assert_eq!(v["decimals"], 24);
            assert_eq!(v["spec"], "ft-1.0.0");
        }
        other => panic!("{other:?}"),
    }
    let err = c
        .call(call("no_such_method", serde_json::json!({})))
        .await
        .unwrap_err();
    match err.handler_error() {
        Some(RpcQueryError::ContractExecutionError { vm_error, .. }) => {
            assert!(
                vm_error.contains("MethodResolveError(MethodNotFound)"),
                "{vm_error}"
            )
        }
        other => panic!("{other:?}"),
    }

    // Blocks by height and hash, chunks, gas price, protocol config.
    net.handle
        .wait_for_height(4, std::time::Duration::from_secs(5))
        .await;
    let b2 = c
        .call(methods::block::RpcBlockRequest {
            block_reference: BlockReference::BlockId(BlockId::Height(2)),
        })
        .await
        .unwrap();
    assert_eq!(b2.header.height, 2);
    assert_eq!(b2.header.prev_height, Some(1));
    let by_hash = c
        .call(methods::block::RpcBlockRequest {
            block_reference: BlockReference::BlockId(BlockId::Hash(b2.header.hash)),
        })
        .await
        .unwrap();
    assert_eq!(by_hash.header.hash, b2.header.hash);
    let err = c
        .call(methods::block::RpcBlockRequest {
            block_reference: BlockReference::BlockId(BlockId::Height(999_999)),
        })
        .await
        .unwrap_err();
    assert!(matches!(
        err.handler_error(),
        Some(near_jsonrpc_primitives::types::blocks::RpcBlockError::UnknownBlock { .. })
    ));
    let chunk = c
        .call(methods::chunk::RpcChunkRequest {
            chunk_reference: near_jsonrpc_primitives::types::chunks::ChunkReference::ChunkHash {
                chunk_id: b2.chunks[0].chunk_hash,
            },
        })
        .await
        .unwrap();
    assert_eq!(chunk.header.height_included, 2);
    let price = c
        .call(methods::gas_price::RpcGasPriceRequest { block_id: None })
        .await
        .unwrap();
    assert_eq!(price.gas_price.as_yoctonear(), 100_000_000);
    let config = c
        .call(
            methods::EXPERIMENTAL_protocol_config::RpcProtocolConfigRequest {
                block_reference: BlockReference::Finality(Finality::Final),
            },
        )
        .await
        .unwrap();
    let limits = &config.runtime_config.wasm_config.limit_config;
    assert_eq!(limits.max_actions_per_receipt, 100);
    assert_eq!(
        limits.max_total_prepaid_gas.as_gas(),
        1_000 * payouts_devnet::TGAS
    );
    assert_eq!(config.transaction_validity_period, 86_400);
    net.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_get_nearcore_parse_errors() {
    let net = start().await;
    let http = reqwest_like(&net.handle.rpc_url());
    for body in [
        "not json".to_string(),
        r#"{"jsonrpc":"2.0","id":1}"#.to_string(),
        r#"{"jsonrpc":"2.0","id":1,"method":"send_tx","params":{"signed_tx_base64":"!!!"}}"#
            .to_string(),
        r#"{"jsonrpc":"2.0","id":1,"method":"query","params":{"request_type":"view_account"}}"#
            .to_string(),
        r#"{"jsonrpc":"2.0","id":1,"method":"broadcast_tx_async","params":[42]}"#.to_string(),
    ] {
        let (status, v) = http.post(&body).await;
        assert_eq!(status, 400, "{body} -> {v}");
        assert_eq!(v["error"]["name"], "REQUEST_VALIDATION_ERROR", "{v}");
        assert_eq!(v["error"]["cause"]["name"], "PARSE_ERROR", "{v}");
    }
    let (status, v) = http
        .post(r#"{"jsonrpc":"2.0","id":"x","method":"nope","params":[]}"#)
        .await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["cause"]["name"], "METHOD_NOT_FOUND");
    assert_eq!(v["id"], "x");
    // The exact nearcore error envelope for an invalid transaction.
    let signer = &net.handle.treasury_signers()[0];
    let tx = net.tx_with(
        signer,
        &id("token.devnet"),
        vec![crate::common::ft_transfer(&id("user-0.devnet"), 1, "m")],
        0,
        net.latest_hash().await,
    );
    let b64 = near_primitives::serialize::to_base64(&borsh::to_vec(&tx).unwrap());
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"send_tx","params":{{"signed_tx_base64":"{b64}","wait_until":"INCLUDED"}}}}"#
    );
    let (status, v) = http.post(&body).await;
    assert_eq!(status, 200);
    assert_eq!(
        v,
        serde_json::json!({
            "jsonrpc": "2.0",
            "id": 7,
            "error": {
                "name": "HANDLER_ERROR",
                "cause": {"name": "INVALID_TRANSACTION", "info": {}},
                "code": -32000,
                "message": "Server error",
                "data": {"TxExecutionError": {"InvalidTxError": {"InvalidNonce": {"tx_nonce": 0, "ak_nonce": 0}}}}
            }
        })
    );
    // Legacy path form of query.
    let (status, v) = http
        .post(r#"{"jsonrpc":"2.0","id":1,"method":"query","params":["account/user-3.devnet",""]}"#)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["amount"], "100000000000000000000000000");
    net.shutdown().await;
}

/// A bare HTTP/1.1 client on a TcpStream (keeps the test free of extra dependencies).
pub struct RawHttp {
    addr: String,
}

pub fn reqwest_like(url: &str) -> RawHttp {
    RawHttp {
        addr: url.trim_start_matches("http://").to_string(),
    }
}

impl RawHttp {
    pub async fn post(&self, body: &str) -> (u16, serde_json::Value) {
        self.request(&format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        ))
        .await
    }

    pub async fn get(&self, path: &str) -> (u16, String, String) {
        let raw = self
            .raw(&format!(
                "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.addr
            ))
            .await;
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, head.to_string(), body.to_string())
    }

    async fn request(&self, req: &str) -> (u16, serde_json::Value) {
        let raw = self.raw(req).await;
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (
            status,
            serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        )
    }

    async fn raw(&self, req: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(&self.addr)
            .await
            .expect("connect");
        stream.write_all(req.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.expect("read");
        String::from_utf8_lossy(&out).into_owned()
    }
}
