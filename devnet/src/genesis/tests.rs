//! Genesis building and parsing.
use super::*;
use crate::keyfiles::write_key_files;

#[test]
fn default_genesis_matches_the_spec() {
    let g = Genesis::default();
    let built = g.build().unwrap();
    let treasury = built.state.account(&g.treasury).unwrap();
    assert_eq!(treasury.keys.len(), 8);
    assert_eq!(built.users.len(), 1000);
    let ledger = built.state.ft(&g.token.account_id).unwrap();
    assert!(ledger.balances.contains_key(&id!("user-0.devnet")));
    assert!(!ledger.balances.contains_key(&id!("user-1.devnet")));
    assert_eq!(ledger.balances[&g.treasury], ledger.total_supply);
    assert_eq!(ledger.metadata.decimals, 24);
}

#[test]
fn keys_are_deterministic_and_distinct() {
    let a = derived_secret_key(&id!("treasury.devnet"), 0);
    assert_eq!(a, derived_secret_key(&id!("treasury.devnet"), 0));
    assert_ne!(
        a.public_key(),
        derived_secret_key(&id!("treasury.devnet"), 1).public_key()
    );
}

#[test]
fn toml_genesis_parses() {
    let text = r#"
        treasury = "t.devnet"
        [[accounts]]
        account_id = "t.devnet"
        amount = "1000"
        key_count = 2
        [[accounts.function_call_keys]]
        receiver_id = "c.devnet"
        method_names = ["claim"]
        [[accounts]]
        account_id = "tok.devnet"
        amount = "1"
        contract = "ft"
        [token]
        account_id = "tok.devnet"
        owner_id = "t.devnet"
        total_supply = "340282366920938463463374607431768211455"
    "#;
    let g: Genesis = toml::from_str(text).unwrap();
    let built = g.build().unwrap();
    assert_eq!(built.keys[&id!("t.devnet")].len(), 3);
    let dir = tempfile::tempdir().unwrap();
    let files = write_key_files(dir.path(), &built, &g.treasury).unwrap();
    assert_eq!(files.len(), 3);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("\"private_key\": \"ed25519:"));
}
