//! World state: accounts with NEAR balances and access keys, and the ledgers of the native
//! contracts. Changes made while a receipt executes go through [`State`] methods that record an
//! undo entry, so a failed receipt reverts all of its actions ([`State::rollback`]).
//!
//! The state is versioned by block, as a nearcore node's trie is: the undo entries of every
//! committed change are kept per block ([`State::seal_block`]) for the last
//! `history_blocks` blocks, so a read at an earlier height ([`State::at`]) sees the state as it
//! was after that block, not the current one (nearcore `query` reads the state root of the block
//! asked for; a `final` query is about two blocks behind the head). Reads older than the kept
//! history are refused ([`Pruned`](crate::history::Pruned); reads: [`crate::history`]), like nearcore's `GARBAGE_COLLECTED_BLOCK`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

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
    /// Gas one `ft_transfer` burns (on top of the action fees); a call with less attached gas
    /// fails with "Exceeded the prepaid gas.".
    pub ft_transfer_gas: u64,
}

#[derive(Clone)]
pub(crate) enum Undo {
    Amount(AccountId, u128),
    Key(AccountId, PublicKey, Option<AccessKey>),
    FtBalance(AccountId, AccountId, Option<u128>),
}

/// What an undo entry is about (to keep only a block's first change of each item).
#[derive(PartialEq, Eq, Hash)]
pub(crate) enum Item<'a> {
    Amount(&'a AccountId),
    Key(&'a AccountId, &'a PublicKey),
    FtBalance(&'a AccountId, &'a AccountId),
}

impl Undo {
    pub(crate) fn item(&self) -> Item<'_> {
        match self {
            Undo::Amount(id, _) => Item::Amount(id),
            Undo::Key(id, pk, _) => Item::Key(id, pk),
            Undo::FtBalance(token, holder, _) => Item::FtBalance(token, holder),
        }
    }
}

/// The committed changes of one block, as the values they replaced (first change of each item).
pub(crate) struct BlockChanges {
    pub(crate) height: u64,
    pub(crate) undo: Vec<Undo>,
}

/// Default number of past blocks whose state stays readable.
pub const DEFAULT_HISTORY_BLOCKS: usize = 2_000;

/// The whole state.
pub struct State {
    accounts: HashMap<AccountId, Account>,
    ft: HashMap<AccountId, FtLedger>,
    journal: Vec<Undo>,
    /// Undo entries of the changes committed in the block being produced.
    block_undo: Vec<Undo>,
    /// Changes of the last sealed blocks, oldest first, contiguous heights.
    pub(crate) history: VecDeque<BlockChanges>,
    history_blocks: usize,
    /// Height of the last sealed block (the current state is the state after it).
    pub(crate) sealed_height: u64,
}

impl State {
    /// A state holding the given accounts and token ledgers.
    pub fn new(accounts: HashMap<AccountId, Account>, ft: HashMap<AccountId, FtLedger>) -> Self {
        Self {
            accounts,
            ft,
            journal: Vec::new(),
            block_undo: Vec::new(),
            history: VecDeque::new(),
            history_blocks: DEFAULT_HISTORY_BLOCKS,
            sealed_height: 0,
        }
    }

    /// Sets how many past blocks stay readable through [`State::at`] (at least 1).
    pub fn set_history_blocks(&mut self, blocks: usize) {
        self.history_blocks = blocks.max(1);
        self.trim_history();
    }

    /// Marks the state as the state of block `genesis_height` (nothing older exists).
    pub fn set_genesis_height(&mut self, genesis_height: u64) {
        self.sealed_height = genesis_height;
    }

    /// Ends block `height`: the changes committed since the last seal become that block's, and the
    /// state before it stays readable for `history_blocks` blocks.
    pub fn seal_block(&mut self, height: u64) {
        self.commit();
        let all = std::mem::take(&mut self.block_undo);
        let keep: Vec<bool> = {
            let mut seen = HashSet::new();
            all.iter().map(|u| seen.insert(u.item())).collect()
        };
        let undo = all
            .into_iter()
            .zip(keep)
            .filter_map(|(u, first)| first.then_some(u))
            .collect();
        self.history.push_back(BlockChanges { height, undo });
        self.sealed_height = height;
        self.trim_history();
    }

    fn trim_history(&mut self) {
        while self.history.len() > self.history_blocks {
            self.history.pop_front();
        }
    }

    /// Height of the last sealed block.
    pub fn sealed_height(&self) -> u64 {
        self.sealed_height
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

    /// Forgets the undo journal: changes so far are permanent (and belong to the current block).
    pub fn commit(&mut self) {
        self.block_undo.append(&mut self.journal);
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
pub(crate) mod tests {
    use super::*;
    use near_crypto::{KeyType, SecretKey};

    pub(crate) fn sample() -> (State, AccountId, AccountId) {
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
            ft_transfer_gas: crate::fees::DEFAULT_FT_TRANSFER_GAS,
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
