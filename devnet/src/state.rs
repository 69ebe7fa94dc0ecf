//! World state: accounts with NEAR balances and access keys, and the ledgers of the native
//! contracts. Changes made while a receipt executes go through [`State`] methods that record an
//! undo entry, so a failed receipt reverts all of its actions ([`State::rollback`]).

use std::collections::{BTreeMap, HashMap};

use near_crypto::PublicKey;
use near_primitives::account::AccessKey;
use near_primitives::types::AccountId;

/// Which native contract an account runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContractKind {
    /// The NEP-141 fungible token (`contracts::ft`).
    Ft,
    /// The claims contract (`contracts::claims`).
    Claims,
}

/// One account.
#[derive(Debug, Clone)]
pub struct Account {
    /// Liquid balance, yoctoNEAR.
    pub amount: u128,
    /// Storage used, bytes (informational).
    pub storage_usage: u64,
    /// Native contract, if any.
    pub contract: Option<ContractKind>,
    /// Access keys, ordered by public key like nearcore's trie.
    pub keys: BTreeMap<PublicKey, AccessKey>,
}

/// NEP-141 token metadata.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FtMetadata {
    /// Always `ft-1.0.0`.
    pub spec: String,
    /// Token name.
    pub name: String,
    /// Token symbol.
    pub symbol: String,
    /// Icon (none).
    pub icon: Option<String>,
    /// Reference (none).
    pub reference: Option<String>,
    /// Reference hash (none).
    pub reference_hash: Option<String>,
    /// Decimals.
    pub decimals: u8,
}

/// Ledger of the NEP-141 token contract: registered accounts and their balances.
#[derive(Debug, Clone)]
pub struct FtLedger {
    /// Balances; an account is registered iff it has an entry.
    pub balances: HashMap<AccountId, u128>,
    /// Total supply.
    pub total_supply: u128,
    /// Metadata returned by `ft_metadata`.
    pub metadata: FtMetadata,
}

enum Undo {
    Amount(AccountId, u128),
    Key(AccountId, PublicKey, Option<AccessKey>),
    FtBalance(AccountId, AccountId, Option<u128>),
}

/// The whole state.
pub struct State {
    accounts: HashMap<AccountId, Account>,
    ft: HashMap<AccountId, FtLedger>,
    journal: Vec<Undo>,
}

impl State {
    /// A state holding the given accounts and token ledgers.
    pub fn new(accounts: HashMap<AccountId, Account>, ft: HashMap<AccountId, FtLedger>) -> Self {
        Self {
            accounts,
            ft,
            journal: Vec::new(),
        }
    }

    /// An account, if it exists.
    pub fn account(&self, id: &AccountId) -> Option<&Account> {
        self.accounts.get(id)
    }

    /// All accounts (unordered).
    pub fn accounts(&self) -> impl Iterator<Item = (&AccountId, &Account)> {
        self.accounts.iter()
    }

    /// An access key of an account.
    pub fn access_key(&self, id: &AccountId, key: &PublicKey) -> Option<&AccessKey> {
        self.accounts.get(id).and_then(|a| a.keys.get(key))
    }

    /// The token ledger of a token contract account.
    pub fn ft(&self, token: &AccountId) -> Option<&FtLedger> {
        self.ft.get(token)
    }

    /// Sum of all NEAR balances (used for the header's total supply).
    pub fn total_near(&self) -> u128 {
        self.accounts
            .values()
            .fold(0u128, |acc, a| acc.saturating_add(a.amount))
    }

    // ---- journaled mutations (used while executing receipts) ----

    /// Sets an account's NEAR balance. No-op for a missing account.
    pub fn set_amount(&mut self, id: &AccountId, amount: u128) {
        if let Some(acc) = self.accounts.get_mut(id) {
            self.journal.push(Undo::Amount(id.clone(), acc.amount));
            acc.amount = amount;
        }
    }

    /// Adds to an account's NEAR balance (saturating). Returns false for a missing account.
    pub fn credit(&mut self, id: &AccountId, amount: u128) -> bool {
        let Some(current) = self.accounts.get(id).map(|a| a.amount) else {
            return false;
        };
        self.set_amount(id, current.saturating_add(amount));
        true
    }

    /// Inserts, replaces (`Some`) or deletes (`None`) an access key.
    pub fn set_key(&mut self, id: &AccountId, key: &PublicKey, value: Option<AccessKey>) {
        if let Some(acc) = self.accounts.get_mut(id) {
            let old = match value {
                Some(v) => acc.keys.insert(key.clone(), v),
                None => acc.keys.remove(key),
            };
            self.journal.push(Undo::Key(id.clone(), key.clone(), old));
        }
    }

    /// Sets (`Some`) or removes (`None`) an FT balance entry of `token`.
    pub fn set_ft_balance(&mut self, token: &AccountId, holder: &AccountId, value: Option<u128>) {
        if let Some(ledger) = self.ft.get_mut(token) {
            let old = match value {
                Some(v) => ledger.balances.insert(holder.clone(), v),
                None => ledger.balances.remove(holder),
            };
            self.journal
                .push(Undo::FtBalance(token.clone(), holder.clone(), old));
        }
    }

    /// Forgets the undo journal: changes so far are permanent.
    pub fn commit(&mut self) {
        self.journal.clear();
    }

    /// Reverts every journaled change since the last [`State::commit`].
    pub fn rollback(&mut self) {
        while let Some(undo) = self.journal.pop() {
            match undo {
                Undo::Amount(id, amount) => {
                    if let Some(acc) = self.accounts.get_mut(&id) {
                        acc.amount = amount;
                    }
                }
                Undo::Key(id, key, old) => {
                    if let Some(acc) = self.accounts.get_mut(&id) {
                        match old {
                            Some(v) => acc.keys.insert(key, v),
                            None => acc.keys.remove(&key),
                        };
                    }
                }
                Undo::FtBalance(token, holder, old) => {
                    if let Some(ledger) = self.ft.get_mut(&token) {
                        match old {
                            Some(v) => ledger.balances.insert(holder, v),
                            None => ledger.balances.remove(&holder),
                        };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use near_crypto::{KeyType, SecretKey};

    fn sample() -> (State, AccountId, AccountId) {
        let alice: AccountId = "alice.devnet".parse().unwrap();
        let token: AccountId = "token.devnet".parse().unwrap();
        let mut accounts = HashMap::new();
        for id in [&alice, &token] {
            let acc = Account {
                amount: 10,
                storage_usage: 0,
                contract: None,
                keys: BTreeMap::new(),
            };
            accounts.insert(id.clone(), acc);
        }
        let metadata = FtMetadata {
            spec: "ft-1.0.0".into(),
            name: "T".into(),
            symbol: "T".into(),
            icon: None,
            reference: None,
            reference_hash: None,
            decimals: 24,
        };
        let ledger = FtLedger {
            balances: HashMap::from([(alice.clone(), 5)]),
            total_supply: 5,
            metadata,
        };
        (
            State::new(accounts, HashMap::from([(token.clone(), ledger)])),
            alice,
            token,
        )
    }

    #[test]
    fn rollback_restores_every_kind_of_change() {
        let (mut state, alice, token) = sample();
        let pk = SecretKey::from_seed(KeyType::ED25519, "k").public_key();
        state.credit(&alice, 7);
        state.set_key(&alice, &pk, Some(AccessKey::full_access()));
        state.set_ft_balance(&token, &alice, None);
        state.set_ft_balance(&token, &token, Some(3));
        state.rollback();
        assert_eq!(state.account(&alice).unwrap().amount, 10);
        assert!(state.access_key(&alice, &pk).is_none());
        let ledger = state.ft(&token).unwrap();
        assert_eq!(ledger.balances.get(&alice), Some(&5));
        assert!(!ledger.balances.contains_key(&token));
    }

    #[test]
    fn commit_makes_changes_permanent() {
        let (mut state, alice, _) = sample();
        state.credit(&alice, 1);
        state.commit();
        state.rollback();
        assert_eq!(state.account(&alice).unwrap().amount, 11);
    }
}
