//! A chain of real mainnet lake blocks in the Lake S3 layout on disk: the fixture block (93,085,141: 4 shards,
//! two `token.sweat` `ft_transfer` events) copied under new heights, each with its own hash and `prev_hash`
//! naming the block it is linked to, and its receipt ids renamed per height so every copy's events are new
//! claims.

use std::path::{Path, PathBuf};

use near_primitives::hash::{hash, CryptoHash};
use payouts_indexer::rules::RuleConfig;
use serde_json::Value;

/// The fixture block's height.
pub const FIXTURE: u64 = 93_085_141;

/// The real block's files.
pub fn fixture_dir() -> PathBuf {
    // The repository's `tests/fixtures`, from the indexer crate or from the workspace root.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = [
        root.join("tests/fixtures/lake-mainnet"),
        root.join("../tests/fixtures/lake-mainnet"),
    ]
    .into_iter()
    .find(|d| d.is_dir())
    .unwrap_or_else(|| root.join("tests/fixtures/lake-mainnet"));
    assert!(
        dir.join(format!("{FIXTURE:012}/block.json")).is_file(),
        "fixture missing at {}",
        dir.display()
    );
    dir
}

/// The hash the chain gives height `h`.
pub fn hash_of(h: u64) -> CryptoHash {
    hash(format!("payouts-test-chain-{h}").as_bytes())
}

/// The rule matching the fixture's two events.
pub fn sweat_rule() -> RuleConfig {
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

fn read(file: &str) -> String {
    std::fs::read_to_string(fixture_dir().join(format!("{FIXTURE:012}/{file}"))).unwrap()
}

/// The fixture's files, read once, and the strings each copy renames.
pub struct Template {
    block: Value,
    shards: Vec<String>,
    original_hash: String,
    ids: Vec<String>,
}

impl Template {
    /// Reads the fixture.
    pub fn load() -> Self {
        let block: Value = serde_json::from_str(&read("block.json")).unwrap();
        let original_hash = block["header"]["hash"].as_str().unwrap().to_string();
        let shards: Vec<String> = (0..4).map(|i| read(&format!("shard_{i}.json"))).collect();
        // Receipt ids of every shard, renamed for each height wherever they appear.
        let mut ids: Vec<String> = Vec::new();
        for text in &shards {
            let shard: Value = serde_json::from_str(text).unwrap();
            for o in shard["receipt_execution_outcomes"].as_array().unwrap() {
                ids.push(o["receipt"]["receipt_id"].as_str().unwrap().to_string());
            }
        }
        ids.sort();
        ids.dedup();
        Self {
            block,
            shards,
            original_hash,
            ids,
        }
    }

    /// Writes block `height` into `dir`, linked to `prev` (its `prev_hash` is `hash_of(prev)`). Returns the
    /// bytes written.
    pub fn write(&self, dir: &Path, height: u64, prev: u64) -> u64 {
        let new_hash = hash_of(height).to_string();
        let rename = |text: &str| {
            let mut out = text.replace(&self.original_hash, &new_hash);
            for id in &self.ids {
                out = out.replace(
                    id.as_str(),
                    &hash(format!("{id}-{height}").as_bytes()).to_string(),
                );
            }
            out
        };
        let folder = dir.join(format!("{height:012}"));
        std::fs::create_dir_all(&folder).unwrap();
        let mut block = self.block.clone();
        block["header"]["height"] = height.into();
        block["header"]["hash"] = new_hash.clone().into();
        block["header"]["prev_hash"] = hash_of(prev).to_string().into();
        let mut bytes = 0;
        // Shards first, block.json last, each written whole (renamed into place, as an S3 PUT lands).
        let put = |name: &str, text: &str| {
            let tmp = folder.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, folder.join(name)).unwrap();
            text.len() as u64
        };
        for (i, text) in self.shards.iter().enumerate() {
            bytes += put(&format!("shard_{i}.json"), &rename(text));
        }
        bytes + put("block.json", &block.to_string())
    }
}

/// Writes block `height` into `dir`, linked to `prev` (its `prev_hash` is `hash_of(prev)`).
pub fn write_block(dir: &Path, height: u64, prev: u64) {
    Template::load().write(dir, height, prev);
}

/// Writes `heights` into `dir`, each linked to the one before it in the list (the first to `first_prev`).
pub fn write_chain(dir: &Path, first_prev: u64, heights: &[u64]) {
    let template = Template::load();
    let mut prev = first_prev;
    for &h in heights {
        template.write(dir, h, prev);
        prev = h;
    }
}
