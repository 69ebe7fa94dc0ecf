//! Transaction validation in nearcore's order (chain/client/src/rpc_handler.rs
//! `process_tx_internal`: validity period first, then `validate_tx`'s stateless checks, then
//! congestion, then the state), with nearcore's error values:
//! 1. validity period of `block_hash` (`Expired`, also for an unknown hash) — [`check_validity`];
//! 2. size and actions (`ActionsValidation`: number of actions, zero gas, total prepaid gas);
//! 3. signature over `sha256(borsh(Transaction))` (`InvalidSignature`);
//! 4. signer and access key exist (`SignerDoesNotExist`, `AccessKeyNotFound`);
//! 5. nonce (`InvalidNonce`), and at chunk production only the height-based upper bound
//!    (`NonceTooLarge`, never shown to RPC clients: the transaction is dropped);
//! 6. balance and allowance for gas + deposits (`NotEnoughBalance`, `NotEnoughAllowance`);
//! 7. function-call key permissions (`RequiresFullAccess`, `DepositWithFunctionCall`,
//!    `ReceiverMismatch`, `MethodNameMismatch`).

use near_crypto::{PublicKey, Signer};
use near_primitives::account::{AccessKey, AccessKeyPermission};
use near_primitives::action::Action;
use near_primitives::errors::{ActionsValidationError, InvalidAccessKeyError, InvalidTxError};
use near_primitives::transaction::{SignedTransaction, Transaction};
use near_primitives::types::{AccountId, Balance, Gas};
use near_primitives::version::PROTOCOL_VERSION;

use crate::fees::{Fees, TxCost};
use crate::history::StateAt;
use crate::state::State;

/// The reads validation needs, from the current state or from the state of an earlier block (a
/// lagging node validates against what it has seen).
pub trait StateRead {
    /// Liquid balance of an account, `None` when it does not exist.
    fn amount(&self, id: &AccountId) -> Option<u128>;
    /// An access key.
    fn access_key(&self, id: &AccountId, key: &PublicKey) -> Option<AccessKey>;
}

impl StateRead for State {
    fn amount(&self, id: &AccountId) -> Option<u128> {
        self.account(id).map(|a| a.amount)
    }
    fn access_key(&self, id: &AccountId, key: &PublicKey) -> Option<AccessKey> {
        State::access_key(self, id, key).cloned()
    }
}

impl StateRead for StateAt<'_> {
    fn amount(&self, id: &AccountId) -> Option<u128> {
        StateAt::amount(self, id)
    }
    fn access_key(&self, id: &AccountId, key: &PublicKey) -> Option<AccessKey> {
        StateAt::access_key(self, id, key)
    }
}

/// nearcore's `ACCESS_KEY_NONCE_RANGE_MULTIPLIER`: a nonce must stay below `height × 10^6`.
pub const ACCESS_KEY_NONCE_RANGE_MULTIPLIER: u64 = 1_000_000;

/// Checks that need no state: actions, size, signature. Returns the transaction's cost.
pub fn check_stateless(fees: &Fees, tx: &SignedTransaction) -> Result<TxCost, InvalidTxError> {
    let max_size = fees
        .runtime_config()
        .wasm_config
        .limit_config
        .max_transaction_size;
    if tx.get_size() > max_size {
        return Err(InvalidTxError::TransactionSizeExceeded {
            size: tx.get_size(),
            limit: max_size,
        });
    }
    let actions = tx.transaction.actions();
    let limit = fees.max_actions();
    if actions.len() as u64 > limit {
        return Err(InvalidTxError::ActionsValidation(
            ActionsValidationError::TotalNumberOfActionsExceeded {
                total_number_of_actions: actions.len() as u64,
                limit,
            },
        ));
    }
    let mut total_gas: u64 = 0;
    for action in actions {
        match action {
            Action::FunctionCall(fc) if fc.gas.as_gas() == 0 => {
                return Err(InvalidTxError::ActionsValidation(
                    ActionsValidationError::FunctionCallZeroAttachedGas,
                ));
            }
            Action::FunctionCall(fc) => {
                let limits = &fees.runtime_config().wasm_config.limit_config;
                let (name, args) = (fc.method_name.len() as u64, fc.args.len() as u64);
                if name > limits.max_length_method_name {
                    return Err(InvalidTxError::ActionsValidation(
                        ActionsValidationError::FunctionCallMethodNameLengthExceeded {
                            length: name,
                            limit: limits.max_length_method_name,
                        },
                    ));
                }
                if args > limits.max_arguments_length {
                    return Err(InvalidTxError::ActionsValidation(
                        ActionsValidationError::FunctionCallArgumentsLengthExceeded {
                            length: args,
                            limit: limits.max_arguments_length,
                        },
                    ));
                }
            }
            Action::Transfer(_) | Action::AddKey(_) | Action::DeleteKey(_) => {}
            other => {
                return Err(InvalidTxError::ActionsValidation(
                    ActionsValidationError::UnsupportedProtocolFeature {
                        protocol_feature: format!(
                            "devnet does not implement {}",
                            action_name(other)
                        ),
                        version: PROTOCOL_VERSION,
                    },
                ));
            }
        }
        total_gas = total_gas
            .checked_add(action.get_prepaid_gas().as_gas())
            .ok_or(InvalidTxError::ActionsValidation(
                ActionsValidationError::IntegerOverflow,
            ))?;
    }
    if total_gas > fees.max_prepaid_gas() {
        return Err(InvalidTxError::ActionsValidation(
            ActionsValidationError::TotalPrepaidGasExceeded {
                total_prepaid_gas: Gas::from_gas(total_gas),
                limit: Gas::from_gas(fees.max_prepaid_gas()),
            },
        ));
    }
    let hash = tx.get_hash();
    if !tx
        .signature
        .verify(hash.as_ref(), tx.transaction.public_key())
    {
        return Err(InvalidTxError::InvalidSignature);
    }
    fees.tx_cost(actions)
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::CreateAccount(_) => "CreateAccount",
        Action::DeployContract(_) => "DeployContract",
        Action::Stake(_) => "Stake",
        Action::DeleteAccount(_) => "DeleteAccount",
        Action::Delegate(_) => "Delegate",
        Action::DeployGlobalContract(_) => "DeployGlobalContract",
        Action::UseGlobalContract(_) => "UseGlobalContract",
        Action::DeterministicStateInit(_) => "DeterministicStateInit",
        Action::FunctionCall(_) => "FunctionCall",
        Action::Transfer(_) => "Transfer",
        Action::AddKey(_) => "AddKey",
        Action::DeleteKey(_) => "DeleteKey",
    }
}

/// Where the transaction is checked: at the RPC (no nonce upper bound) or while producing the
/// chunk at `height` (upper bound `height × 10^6`).
#[derive(Debug, Clone, Copy)]
pub struct ChainPoint {
    /// Height of the current head (the previous block of the chunk being produced).
    pub head_height: u64,
    /// Height of the transaction's `block_hash`, `None` when unknown.
    pub base_height: Option<u64>,
    /// Validity period in blocks.
    pub validity_period: u64,
    /// `Some(height)` at chunk production.
    pub producing_height: Option<u64>,
}

/// The validity period (step 1): `Expired` when `block_hash` is unknown or more than
/// `validity_period` blocks behind the head.
pub fn check_validity(at: ChainPoint) -> Result<(), InvalidTxError> {
    match at.base_height {
        Some(base)
            if base <= at.head_height
                && at.head_height <= base.saturating_add(at.validity_period) =>
        {
            Ok(())
        }
        _ => Err(InvalidTxError::Expired),
    }
}

/// Checks against the chain and the state (steps 1 and 4–7 of the module docs).
pub fn check_stateful(
    state: &impl StateRead,
    tx: &SignedTransaction,
    cost: &TxCost,
    at: ChainPoint,
) -> Result<(), InvalidTxError> {
    check_validity(at)?;
    let t = &tx.transaction;
    let signer_id = t.signer_id();
    let Some(signer_amount) = state.amount(signer_id) else {
        return Err(InvalidTxError::SignerDoesNotExist {
            signer_id: signer_id.clone(),
        });
    };
    let Some(key) = state.access_key(signer_id, t.public_key()) else {
        return Err(InvalidAccessKeyError::AccessKeyNotFound {
            account_id: signer_id.clone(),
            public_key: Box::new(t.public_key().clone()),
        }
        .into());
    };
    if t.nonce() <= key.nonce {
        return Err(InvalidTxError::InvalidNonce {
            tx_nonce: t.nonce(),
            ak_nonce: key.nonce,
        });
    }
    if let Some(height) = at.producing_height {
        let upper_bound = height.saturating_mul(ACCESS_KEY_NONCE_RANGE_MULTIPLIER);
        if t.nonce() >= upper_bound {
            return Err(InvalidTxError::NonceTooLarge {
                tx_nonce: t.nonce(),
                upper_bound,
            });
        }
    }
    if signer_amount < cost.total_cost {
        return Err(InvalidTxError::NotEnoughBalance {
            signer_id: signer_id.clone(),
            balance: Balance::from_yoctonear(signer_amount),
            cost: Balance::from_yoctonear(cost.total_cost),
        });
    }
    let AccessKeyPermission::FunctionCall(perm) = &key.permission else {
        return Ok(());
    };
    if let Some(allowance) = perm.allowance {
        if allowance.as_yoctonear() < cost.total_cost {
            return Err(InvalidAccessKeyError::NotEnoughAllowance {
                account_id: signer_id.clone(),
                public_key: Box::new(t.public_key().clone()),
                allowance,
                cost: Balance::from_yoctonear(cost.total_cost),
            }
            .into());
        }
    }
    let [Action::FunctionCall(fc)] = t.actions() else {
        return Err(InvalidAccessKeyError::RequiresFullAccess.into());
    };
    if !fc.deposit.is_zero() {
        return Err(InvalidAccessKeyError::DepositWithFunctionCall.into());
    }
    if t.receiver_id().as_str() != perm.receiver_id {
        return Err(InvalidAccessKeyError::ReceiverMismatch {
            tx_receiver: t.receiver_id().clone(),
            ak_receiver: perm.receiver_id.clone(),
        }
        .into());
    }
    if !perm.method_names.is_empty() && !perm.method_names.contains(&fc.method_name) {
        return Err(InvalidAccessKeyError::MethodNameMismatch {
            method_name: fc.method_name.clone(),
        }
        .into());
    }
    Ok(())
}

/// Applies a checked transaction's charges: key nonce, signer balance, key allowance.
pub fn charge(state: &mut State, tx: &SignedTransaction, cost: &TxCost) {
    let t = &tx.transaction;
    let signer_id = t.signer_id();
    if let Some(mut key) = state.access_key(signer_id, t.public_key()).cloned() {
        key.nonce = t.nonce();
        if let AccessKeyPermission::FunctionCall(perm) = &mut key.permission {
            if let Some(allowance) = perm.allowance.as_mut() {
                *allowance = allowance.saturating_sub(Balance::from_yoctonear(cost.total_cost));
            }
        }
        state.set_key(signer_id, t.public_key(), Some(key));
    }
    if let Some(amount) = state.account(signer_id).map(|a| a.amount) {
        state.set_amount(signer_id, amount.saturating_sub(cost.total_cost));
    }
    state.commit();
}

/// Signs a transaction: ed25519 over `sha256(borsh(Transaction))`, the transaction hash.
pub fn sign(tx: Transaction, signer: &Signer) -> SignedTransaction {
    let (hash, _) = tx.get_hash_and_size();
    SignedTransaction::new(signer.sign(hash.as_ref()), tx)
}
