//! Building and signing one `ft_transfer` batch. Each action carries exactly 1 yoctoNEAR (NEP-141 requires
//! it, so only full-access keys can send) and the memo `payouts:<claim id>[,<claim id>…]` that ties it back
//! to the claims it pays (several when coalesced: [`crate::plan::Transfer`], amount their sum).

use std::str::FromStr;

use near_crypto::PublicKey;
use near_primitives::action::{Action, FunctionCallAction};
use near_primitives::hash::CryptoHash;
use near_primitives::transaction::{SignedTransaction, Transaction, TransactionV0};
use near_primitives::types::{AccountId, Balance, Gas};
use payouts_store::claims::Claim;
use payouts_store::memo::transfer_memo;
use payouts_store::Yocto;

use crate::keyfile::TreasuryKey;
use crate::plan::Transfer;

/// A signed batch, ready to persist and broadcast.
#[derive(Debug, Clone)]
pub struct SignedBatch {
    /// The transaction.
    pub signed: SignedTransaction,
    /// Its hash (what the chain and our `transactions` table call it).
    pub hash: CryptoHash,
    /// borsh bytes: exactly what is (re-)broadcast.
    pub bytes: Vec<u8>,
    /// Signing key.
    pub public_key: PublicKey,
    /// Nonce used.
    pub nonce: u64,
}

/// Why a batch cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A token or receiver is not a valid account id.
    #[error("invalid account id `{0}`")]
    AccountId(String),
    /// Serialising failed (should not happen).
    #[error("cannot encode the transaction: {0}")]
    Encode(String),
}

/// The `ft_transfer` action paying `claim`.
pub fn transfer_action(claim: &Claim, gas: u64) -> Action {
    let args = serde_json::json!({
        "receiver_id": claim.receiver_id,
        "amount": claim.amount.to_string(),
        "memo": transfer_memo(claim.id, claim.memo.as_deref()),
    });
    Action::FunctionCall(Box::new(FunctionCallAction {
        method_name: "ft_transfer".into(),
        args: args.to_string().into_bytes(),
        gas: Gas::from_gas(gas),
        deposit: Balance::from_yoctonear(1),
    }))
}

/// The `ft_transfer` action paying every claim of `transfer` with their sum.
pub fn merged_transfer_action(transfer: &Transfer, gas: u64) -> Action {
    let args = serde_json::json!({
        "receiver_id": transfer.receiver(),
        "amount": transfer.amount().to_string(),
        "memo": transfer.memo(),
    });
    Action::FunctionCall(Box::new(FunctionCallAction {
        method_name: "ft_transfer".into(),
        args: args.to_string().into_bytes(),
        gas: Gas::from_gas(gas),
        deposit: Balance::from_yoctonear(1),
    }))
}

/// The `storage_deposit` action registering `account` (registration only: an already registered account gets
/// the deposit back).
pub fn register_action(account: &str, deposit: Yocto, gas: u64) -> Action {
    let args = serde_json::json!({ "account_id": account, "registration_only": true });
    Action::FunctionCall(Box::new(FunctionCallAction {
        method_name: "storage_deposit".into(),
        args: args.to_string().into_bytes(),
        gas: Gas::from_gas(gas),
        deposit: Balance::from_yoctonear(deposit.0),
    }))
}

/// Receivers to register before paying them, and the deposit each registration attaches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registrations {
    /// Receivers that get a `storage_deposit` before their first `ft_transfer` in the batch.
    pub receivers: std::collections::HashSet<String>,
    /// Deposit per registration (the token's `storage_balance_bounds.min`).
    pub deposit: Yocto,
}

impl Registrations {
    /// Actions a batch of `claims` needs: one per claim, plus one per distinct receiver to register.
    pub fn actions_for(&self, claims: &[Claim]) -> usize {
        let mut seen = std::collections::HashSet::new();
        claims.len()
            + claims
                .iter()
                .filter(|c| self.receivers.contains(&c.receiver_id) && seen.insert(&c.receiver_id))
                .count()
    }
}

impl Registrations {
    /// Actions a batch of `transfers` needs: one per transfer, plus one per distinct receiver to register.
    pub fn actions_for_transfers(&self, transfers: &[Transfer]) -> usize {
        let mut seen = std::collections::HashSet::new();
        transfers.len()
            + transfers
                .iter()
                .filter(|t| self.receivers.contains(t.receiver()) && seen.insert(t.receiver()))
                .count()
    }
}

/// Signs a batch paying `claims` from `key` on `token` with `nonce`, referencing `block_hash`, registering
/// first the receivers named in `register`.
pub fn build_batch(
    key: &TreasuryKey,
    token: &str,
    claims: &[Claim],
    nonce: u64,
    block_hash: CryptoHash,
    gas_per_transfer: u64,
) -> Result<SignedBatch, BuildError> {
    build_batch_registering(
        key,
        token,
        claims,
        nonce,
        block_hash,
        gas_per_transfer,
        &Registrations::default(),
    )
}

/// [`build_batch`], with `storage_deposit` actions for the receivers in `register`.
pub fn build_batch_registering(
    key: &TreasuryKey,
    token: &str,
    claims: &[Claim],
    nonce: u64,
    block_hash: CryptoHash,
    gas_per_transfer: u64,
    register: &Registrations,
) -> Result<SignedBatch, BuildError> {
    let transfers: Vec<Transfer> = claims.iter().cloned().map(Transfer::single).collect();
    build_transfers(
        key,
        token,
        &transfers,
        nonce,
        block_hash,
        gas_per_transfer,
        register,
    )
}

/// Signs a batch of `transfers` (each one `ft_transfer`, paying one claim or several merged ones), with
/// `storage_deposit` actions first for the receivers in `register`.
pub fn build_transfers(
    key: &TreasuryKey,
    token: &str,
    transfers: &[Transfer],
    nonce: u64,
    block_hash: CryptoHash,
    gas_per_transfer: u64,
    register: &Registrations,
) -> Result<SignedBatch, BuildError> {
    let receiver_id =
        AccountId::from_str(token).map_err(|_| BuildError::AccountId(token.into()))?;
    for t in transfers {
        AccountId::from_str(t.receiver())
            .map_err(|_| BuildError::AccountId(t.receiver().to_string()))?;
    }
    let mut registered = std::collections::HashSet::new();
    let mut actions = Vec::with_capacity(transfers.len());
    for t in transfers {
        let receiver = t.receiver();
        if register.receivers.contains(receiver) && registered.insert(receiver) {
            actions.push(register_action(
                receiver,
                register.deposit,
                gas_per_transfer,
            ));
        }
        match t.claims.as_slice() {
            // One claim: exactly the action it always had.
            [one] => actions.push(transfer_action(one, gas_per_transfer)),
            _ => actions.push(merged_transfer_action(t, gas_per_transfer)),
        }
    }
    let tx = Transaction::V0(TransactionV0 {
        signer_id: key.account_id.clone(),
        public_key: key.public_key.clone(),
        nonce,
        receiver_id,
        block_hash,
        actions,
    });
    let (hash, _) = tx.get_hash_and_size();
    let signed = SignedTransaction::new(key.sign(hash.as_ref()), tx);
    let bytes = borsh::to_vec(&signed).map_err(|e| BuildError::Encode(e.to_string()))?;
    Ok(SignedBatch {
        signed,
        hash,
        bytes,
        public_key: key.public_key.clone(),
        nonce,
    })
}
