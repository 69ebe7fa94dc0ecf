//! The real mainnet block in `shared/fixtures/lake-mainnet/` (Lake S3 layout) through the same source, scan
//! and commit path the indexer runs.

use std::path::PathBuf;
use std::time::Duration;

use payouts_indexer::apply::commit_blocks;
use payouts_indexer::rules::{compile, RuleConfig};
use payouts_indexer::scan::scan_block;
use payouts_indexer::source::{self, Fetch, SourceConfig};
use payouts_store::testdb::TestDb;
use payouts_store::Yocto;

const HEIGHT: u64 = 93_085_141;

fn fixture_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/lake-mainnet");
    assert!(
        dir.join(format!("{HEIGHT:012}/block.json")).is_file(),
        "fixture missing at {}",
        dir.display()
    );
    dir
}

fn sweat_rule() -> RuleConfig {
    RuleConfig {
        name: "sweat-transfers".into(),
        contract: "token.sweat".into(),
        standard: "nep141".into(),
        event: "ft_transfer".into(),
        receiver_field: "new_owner_id".into(),
        amount_field: Some("amount".into()),
        fixed_amount: None,
        token: "token.sweat".into(),
        memo: None,
    }
}

#[tokio::test]
async fn mainnet_block_yields_exactly_its_two_sweat_transfers() {
    let source = SourceConfig::Dir {
        path: fixture_dir(),
    };
    let mut stream = source::start(&source, HEIGHT, Fetch::ahead(4))
        .await
        .unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(30), stream.blocks.recv())
        .await
        .unwrap()
        .unwrap();
    stream.task.abort();
    assert_eq!(msg.block.header.height, HEIGHT);
    assert_eq!(msg.shards.len(), 4);

    let rules = compile(&[sweat_rule()]).unwrap();
    let found = scan_block(&msg, &rules);
    assert!(found.malformed.is_empty(), "{:?}", found.malformed);
    assert_eq!(found.claims.len(), 2, "{:#?}", found.claims);
    for c in &found.claims {
        assert_eq!(c.receiver_id, "reward-optin.sweat");
        assert_eq!(c.token_contract, "token.sweat");
        assert_eq!(c.trigger_block_height, Some(HEIGHT as i64));
        assert!(c.amount > Yocto(0));
    }
    let receipts: std::collections::HashSet<_> =
        found.claims.iter().map(|c| c.receipt_id.clone()).collect();
    assert_eq!(receipts.len(), 2, "two distinct receipts");
    // Every chunk transaction and receipt outcome of the block was read.
    assert_eq!(found.transactions.len(), 7);
    assert!(found.receipt_outcomes.len() >= 17);

    // A rule for another contract, standard or event matches nothing.
    for (contract, event) in [
        ("token.sweat", "ft_mint"),
        ("sweat_welcome.near", "ft_transfer"),
    ] {
        let mut other = sweat_rule();
        other.contract = contract.into();
        other.event = event.into();
        assert!(scan_block(&msg, &compile(&[other]).unwrap())
            .claims
            .is_empty());
    }

    // Committed twice (a replay), the rows appear once.
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let first = commit_blocks(&mut conn, Some("fixture"), std::slice::from_ref(&found))
        .await
        .unwrap();
    assert_eq!((first.inserted, first.events), (2, 2));
    let again = commit_blocks(&mut conn, None, std::slice::from_ref(&found))
        .await
        .unwrap();
    assert_eq!(again.inserted, 0);
}
