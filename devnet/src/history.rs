//! Reads of the state at an earlier block ([`StateAt`]): the current values with the undo entries of every
//! later block applied, as a nearcore `query` reads the state root of the block asked for. The writes that
//! keep those undo entries (per block, for `history_blocks` blocks) are in [`crate::state`]; this module only
//! reads them, and refuses heights older than the kept history ([`Pruned`], like nearcore's
//! `GARBAGE_COLLECTED_BLOCK`).

use std::collections::HashMap;

use near_crypto::PublicKey;
use near_primitives::account::AccessKey;
use near_primitives::types::AccountId;

use crate::state::{Account, BlockChanges, Item, State, Undo};

/// A read at a height whose state is no longer kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Oldest height still readable.
    pub oldest: u64,
}

impl State {
    /// The state as it was after block `height` (the current state for the last sealed block or
    /// later). `Err` when that block's state is older than the kept history.
    pub fn at(&self, height: u64) -> Result<StateAt<'_>, Pruned> {
        if height >= self.sealed_height {
            return Ok(StateAt {
                state: self,
                later: Vec::new(),
            });
        }
        let oldest = self
            .history
            .front()
            .map_or(self.sealed_height, |b| b.height.saturating_sub(1));
        if height < oldest {
            return Err(Pruned { oldest });
        }
        let later = self.history.iter().filter(|b| b.height > height).collect();
        Ok(StateAt { state: self, later })
    }
}

/// A read-only view of the state after an earlier block: the current values with the changes of
/// every later block undone.
pub struct StateAt<'a> {
    state: &'a State,
    /// Blocks after the viewed one, oldest first.
    later: Vec<&'a BlockChanges>,
}

impl StateAt<'_> {
    /// The value an item had after the viewed block: the value replaced by its first later change.
    fn first_change(&self, item: &Item<'_>) -> Option<&Undo> {
        self.later
            .iter()
            .flat_map(|b| b.undo.iter())
            .find(|u| u.item() == *item)
    }

    /// Undo entries of later blocks, newest first (to roll a copy back).
    fn newest_first(&self) -> impl Iterator<Item = &Undo> {
        self.later.iter().rev().flat_map(|b| b.undo.iter().rev())
    }

    /// Whether the view is the current state.
    pub fn is_current(&self) -> bool {
        self.later.is_empty()
    }

    /// An account as it was (accounts are never created or deleted on the devnet).
    pub fn account(&self, id: &AccountId) -> Option<Account> {
        let mut acc = self.state.account(id)?.clone();
        if self.is_current() {
            return Some(acc);
        }
        if let Some(Undo::Amount(_, old)) = self.first_change(&Item::Amount(id)) {
            acc.amount = *old;
        }
        for u in self.newest_first() {
            if let Undo::Key(owner, pk, old) = u {
                if owner == id {
                    match old {
                        Some(k) => acc.keys.insert(pk.clone(), k.clone()),
                        None => acc.keys.remove(pk),
                    };
                }
            }
        }
        Some(acc)
    }

    /// A NEAR balance as it was.
    pub fn amount(&self, id: &AccountId) -> Option<u128> {
        let now = self.state.account(id)?.amount;
        match self.first_change(&Item::Amount(id)) {
            Some(Undo::Amount(_, old)) => Some(*old),
            _ => Some(now),
        }
    }

    /// An access key as it was.
    pub fn access_key(&self, id: &AccountId, key: &PublicKey) -> Option<AccessKey> {
        match self.first_change(&Item::Key(id, key)) {
            Some(Undo::Key(_, _, old)) => old.clone(),
            _ => self.state.access_key(id, key).cloned(),
        }
    }

    /// A state holding only `contract` (and its token ledger, if any) as they were: what a view
    /// call of that contract reads.
    pub fn contract_state(&self, contract: &AccountId) -> Option<State> {
        let account = self.account(contract)?;
        let mut ft = HashMap::new();
        if let Some(ledger) = self.state.ft(contract) {
            let mut ledger = ledger.clone();
            for u in self.newest_first() {
                if let Undo::FtBalance(token, holder, old) = u {
                    if token == contract {
                        match old {
                            Some(v) => ledger.balances.insert(holder.clone(), *v),
                            None => ledger.balances.remove(holder),
                        };
                    }
                }
            }
            ft.insert(contract.clone(), ledger);
        }
        Some(State::new(HashMap::from([(contract.clone(), account)]), ft))
    }
}

#[cfg(test)]
mod tests {
    use near_crypto::{KeyType, SecretKey};
    use near_primitives::account::AccessKey;

    use super::*;
    use crate::state::tests::sample;

    #[test]
    fn reads_at_an_earlier_block_see_the_state_of_that_block() {
        let (mut state, alice, token) = sample();
        let pk = SecretKey::from_seed(KeyType::ED25519, "k").public_key();
        state.set_genesis_height(1);
        // Block 2: alice +1 and a key; block 3: alice +1 twice, key removed, token balance 9.
        state.credit(&alice, 1);
        state.set_key(&alice, &pk, Some(AccessKey::full_access()));
        state.seal_block(2);
        state.credit(&alice, 1);
        state.credit(&alice, 1);
        state.set_key(&alice, &pk, None);
        state.set_ft_balance(&token, &alice, Some(9));
        state.seal_block(3);
        let at = |h| state.at(h).unwrap();
        assert_eq!(at(1).amount(&alice), Some(10));
        assert_eq!(at(2).amount(&alice), Some(11));
        assert_eq!(at(3).amount(&alice), Some(13));
        assert!(at(1).access_key(&alice, &pk).is_none());
        assert!(at(2).access_key(&alice, &pk).is_some());
        assert!(at(3).access_key(&alice, &pk).is_none());
        assert_eq!(at(2).account(&alice).unwrap().keys.len(), 1);
        assert_eq!(at(3).account(&alice).unwrap().keys.len(), 0);
        let ft_at = |h| {
            let s = state.at(h).unwrap().contract_state(&token).unwrap();
            s.ft(&token).unwrap().balances.get(&alice).copied()
        };
        assert_eq!(ft_at(2), Some(5));
        assert_eq!(ft_at(3), Some(9));
    }

    #[test]
    fn history_is_bounded() {
        let (mut state, alice, _) = sample();
        state.set_genesis_height(1);
        state.set_history_blocks(2);
        for h in 2..=5 {
            state.credit(&alice, 1);
            state.seal_block(h);
        }
        assert_eq!(state.at(3).unwrap().amount(&alice), Some(12));
        assert_eq!(state.at(2).err(), Some(Pruned { oldest: 3 }));
    }
}
