//! Building and signing one `ft_transfer` batch. Each action carries exactly 1 yoctoNEAR (NEP-141 requires
//! it, so only full-access keys can send) and the memo `payouts:<claim id>` that ties it back to its claim.

use std::str::FromStr;

use near_crypto::PublicKey;
use near_primitives::action::{Action, FunctionCallAction};
use near_primitives::hash::CryptoHash;
use near_primitives::transaction::{SignedTransaction, Transaction, TransactionV0};
use near_primitives::types::{AccountId, Balance, Gas};
use payouts_store::claims::Claim;
use payouts_store::memo::transfer_memo;

use crate::keyfile::TreasuryKey;

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

/// Signs a batch paying `claims` from `key` on `token` with `nonce`, referencing `block_hash`.
pub fn build_batch(
    key: &TreasuryKey,
    token: &str,
    claims: &[Claim],
    nonce: u64,
    block_hash: CryptoHash,
    gas_per_transfer: u64,
) -> Result<SignedBatch, BuildError> {
    let receiver_id =
        AccountId::from_str(token).map_err(|_| BuildError::AccountId(token.into()))?;
    for c in claims {
        AccountId::from_str(&c.receiver_id)
            .map_err(|_| BuildError::AccountId(c.receiver_id.clone()))?;
    }
    let tx = Transaction::V0(TransactionV0 {
        signer_id: key.account_id.clone(),
        public_key: key.public_key.clone(),
        nonce,
        receiver_id,
        block_hash,
        actions: claims
            .iter()
            .map(|c| transfer_action(c, gas_per_transfer))
            .collect(),
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
