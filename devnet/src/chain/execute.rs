//! Receipt execution: all actions of a receipt apply or none do (the state journal is rolled
//! back on the first failing action); logs written before the failure are kept; unused gas and,
//! on failure, the deposits go back in refund receipts from `system`. Gas is burnt and refunded
//! at the price the receipt's gas was bought at; compute is the gas plus the storage surcharge
//! of each method that ran (`fees::Fees::storage_compute_surcharge`). A function call whose
//! attached gas is below what the method burns (a token's `ft_transfer` gas is its own) fails
//! with "Exceeded the prepaid gas." and burns all it was given, failing the whole receipt.

use near_crypto::{KeyType, PublicKey};
use near_indexer_primitives::IndexerExecutionOutcomeWithReceipt;
use near_primitives::account::id::AccountIdRef;
use near_primitives::account::AccessKey;
use near_primitives::action::{Action, TransferAction};
use near_primitives::errors::{
    ActionError, ActionErrorKind, CompilationError, FunctionCallError, MethodResolveError,
    TxExecutionError,
};
use near_primitives::hash::CryptoHash;
use near_primitives::types::{AccountId, Balance, Gas};
use near_primitives::utils::create_receipt_id_from_receipt_id;
use near_primitives::views::{
    ActionView, ExecutionMetadataView, ExecutionOutcomeView, ExecutionOutcomeWithIdView,
    ExecutionStatusView, ReceiptEnumView, ReceiptView,
};

use super::{AppliedFtTransfer, Chain, PendingReceipt, ReceiptRecord};
use crate::contracts::{self, CallCtx, CallEffects, CallError};
use crate::validate::ACCESS_KEY_NONCE_RANGE_MULTIPLIER;

/// Result of executing one receipt.
pub(super) struct Executed {
    pub(super) outcome: IndexerExecutionOutcomeWithReceipt,
    pub(super) children: Vec<PendingReceipt>,
    pub(super) gas_burnt: u64,
    pub(super) compute: u64,
    pub(super) tokens_burnt: u128,
}

fn system() -> AccountId {
    const SYSTEM: &AccountIdRef = AccountIdRef::new_or_panic("system");
    SYSTEM.to_owned()
}

/// nearcore's rendering of a native call error.
fn call_error(err: CallError) -> ActionErrorKind {
    let fc = match err {
        CallError::Panic(msg) => {
            FunctionCallError::ExecutionError(format!("Smart contract panicked: {msg}"))
        }
        CallError::MethodNotFound => {
            FunctionCallError::MethodResolveError(MethodResolveError::MethodNotFound)
        }
        CallError::ProhibitedInView(m) => FunctionCallError::ExecutionError(format!(
            "ProhibitedInView {{ method_name: \"{m}\" }}"
        )),
    };
    ActionErrorKind::FunctionCallError(fc)
}

impl Chain {
    /// Gas a native method burns: the token's own `ft_transfer` gas, else [`crate::fees::native_gas`].
    fn method_gas(&self, contract: &AccountId, method: &str) -> u64 {
        if method == "ft_transfer" {
            if let Some(ledger) = self.state.ft(contract) {
                return ledger.ft_transfer_gas;
            }
        }
        crate::fees::native_gas(method)
    }

    pub(super) fn execute_receipt(
        &mut self,
        r: PendingReceipt,
        height: u64,
        block_hash: CryptoHash,
    ) -> Executed {
        let fees = self.params.fees.clone();
        let receipt_id = r.view.receipt_id;
        let receiver = r.view.receiver_id.clone();
        let predecessor = r.view.predecessor_id.clone();
        let mut gas_burnt = if r.is_refund {
            0
        } else {
            fees.receipt_fees().1
        };
        let mut compute_extra: u64 = 0;
        let mut fx = CallEffects::default();
        let mut value = Vec::new();
        let mut failure: Option<ActionError> = None;
        let exists = self.state.account(&receiver).is_some();
        for (index, action) in r.actions.iter().enumerate() {
            let fail = |kind| {
                Some(ActionError {
                    index: Some(index as u64),
                    kind,
                })
            };
            if !exists {
                failure = fail(ActionErrorKind::AccountDoesNotExist {
                    account_id: receiver.clone(),
                });
                break;
            }
            if !r.is_refund {
                gas_burnt = gas_burnt.saturating_add(fees.action_fees(action).1);
            }
            let result = match action {
                Action::FunctionCall(fc) => {
                    let deposit = fc.deposit.as_yoctonear();
                    self.state.credit(&receiver, deposit);
                    let contract = self.state.account(&receiver).and_then(|a| a.contract);
                    let need = self.method_gas(&receiver, &fc.method_name);
                    match contract {
                        None => Err(ActionErrorKind::FunctionCallError(
                            FunctionCallError::CompilationError(
                                CompilationError::CodeDoesNotExist {
                                    account_id: receiver.clone(),
                                },
                            ),
                        )),
                        Some(_) if fc.gas.as_gas() < need => {
                            gas_burnt = gas_burnt.saturating_add(fc.gas.as_gas());
                            Err(ActionErrorKind::FunctionCallError(
                                FunctionCallError::ExecutionError(
                                    "Exceeded the prepaid gas.".into(),
                                ),
                            ))
                        }
                        Some(kind) => {
                            gas_burnt = gas_burnt.saturating_add(need);
                            compute_extra = compute_extra
                                .saturating_add(fees.storage_compute_surcharge(&fc.method_name));
                            let ctx = CallCtx {
                                contract: &receiver,
                                predecessor: &predecessor,
                                deposit,
                                args: &fc.args,
                            };
                            contracts::call(&mut self.state, kind, &fc.method_name, &ctx, &mut fx)
                                .map(|v| value = v)
                                .map_err(call_error)
                        }
                    }
                }
                Action::Transfer(t) => {
                    self.state.credit(&receiver, t.deposit.as_yoctonear());
                    Ok(())
                }
                Action::AddKey(add) => self.add_key(
                    &receiver,
                    &predecessor,
                    &add.public_key,
                    &add.access_key,
                    height,
                ),
                Action::DeleteKey(del) => self.delete_key(&receiver, &predecessor, &del.public_key),
                _ => Err(ActionErrorKind::FunctionCallError(
                    FunctionCallError::WasmUnknownError,
                )),
            };
            if let Err(kind) = result {
                failure = fail(kind);
                break;
            }
        }
        if failure.is_none() {
            // Promise transfers leave the contract's balance now, as on nearcore.
            for (_, amount) in &fx.transfers {
                let balance = self.state.account(&receiver).map_or(0, |a| a.amount);
                self.state
                    .set_amount(&receiver, balance.saturating_sub(*amount));
            }
        }
        if failure.is_some() {
            self.state.rollback();
        } else {
            self.state.commit();
            self.ft_transfers
                .extend(fx.ft_transfers.drain(..).map(|event| AppliedFtTransfer {
                    event,
                    receipt_id,
                    height,
                }));
        }

        // Child receipts: the contract's transfers (success only), then refunds.
        let mut children = Vec::new();
        let mut child_prepaid: u64 = 0;
        let transfer_fees = fees.action_fees(&Action::Transfer(TransferAction {
            deposit: Balance::ZERO,
        }));
        let (recv_send, recv_exec) = fees.receipt_fees();
        let next_id = |children: &Vec<PendingReceipt>| {
            create_receipt_id_from_receipt_id(&receipt_id, height, children.len())
        };
        if failure.is_none() {
            for (to, amount) in std::mem::take(&mut fx.transfers) {
                let exec = recv_exec.saturating_add(transfer_fees.1);
                gas_burnt = gas_burnt
                    .saturating_add(recv_send)
                    .saturating_add(transfer_fees.0);
                child_prepaid = child_prepaid.saturating_add(exec);
                let id = next_id(&children);
                let mut child = self.transfer_receipt(
                    id,
                    receiver.clone(),
                    to,
                    &r.signer,
                    amount,
                    Some(r.gas_price),
                );
                child.prepaid_gas = exec;
                children.push(child);
            }
        }
        let deposits: u128 = if failure.is_some() {
            r.actions
                .iter()
                .map(|a| a.get_deposit_balance().as_yoctonear())
                .sum()
        } else {
            0
        };
        if deposits > 0 && !r.is_refund {
            let id = next_id(&children);
            children.push(self.transfer_receipt(
                id,
                system(),
                predecessor.clone(),
                &r.signer,
                deposits,
                None,
            ));
        }
        let gas_refund = r
            .prepaid_gas
            .saturating_sub(gas_burnt)
            .saturating_sub(child_prepaid);
        if gas_refund > 0 && !r.is_refund {
            let id = next_id(&children);
            let amount = u128::from(gas_refund).saturating_mul(r.gas_price);
            children.push(self.transfer_receipt(
                id,
                system(),
                r.signer.clone(),
                &r.signer,
                amount,
                None,
            ));
        }

        self.refund_ids.extend(
            children
                .iter()
                .filter(|c| c.is_refund)
                .map(|c| c.view.receipt_id),
        );
        let tokens_burnt = u128::from(gas_burnt).saturating_mul(r.gas_price);
        let status = match failure {
            Some(err) => ExecutionStatusView::Failure(TxExecutionError::ActionError(err)),
            None => ExecutionStatusView::SuccessValue(value),
        };
        let outcome = ExecutionOutcomeWithIdView {
            proof: vec![],
            block_hash,
            id: receipt_id,
            outcome: ExecutionOutcomeView {
                logs: fx.logs,
                receipt_ids: children.iter().map(|c| c.view.receipt_id).collect(),
                gas_burnt: Gas::from_gas(gas_burnt),
                tokens_burnt: Balance::from_yoctonear(tokens_burnt),
                executor_id: receiver,
                status,
                metadata: ExecutionMetadataView::default(),
            },
        };
        self.receipt_records.insert(
            receipt_id,
            ReceiptRecord {
                view: r.view.clone(),
                outcome: outcome.clone(),
                height,
            },
        );
        Executed {
            outcome: IndexerExecutionOutcomeWithReceipt {
                execution_outcome: outcome,
                receipt: r.view,
            },
            children,
            gas_burnt,
            compute: gas_burnt.saturating_add(compute_extra),
            tokens_burnt,
        }
    }

    fn transfer_receipt(
        &self,
        receipt_id: CryptoHash,
        from: AccountId,
        to: AccountId,
        signer: &AccountId,
        amount: u128,
        bought_at: Option<u128>,
    ) -> PendingReceipt {
        // `None`: a refund from `system`, which buys no gas.
        let is_refund = bought_at.is_none();
        let deposit = Balance::from_yoctonear(amount);
        let (signer_id, signer_public_key, gas_price) = match bought_at {
            None => (system(), PublicKey::empty(KeyType::ED25519), 0),
            Some(price) => (signer.clone(), PublicKey::empty(KeyType::ED25519), price),
        };
        PendingReceipt {
            view: ReceiptView {
                predecessor_id: from,
                receiver_id: to,
                receipt_id,
                receipt: ReceiptEnumView::Action {
                    signer_id,
                    signer_public_key,
                    gas_price: Balance::from_yoctonear(gas_price),
                    output_data_receivers: vec![],
                    input_data_ids: vec![],
                    actions: vec![ActionView::Transfer { deposit }],
                    is_promise_yield: false,
                    refund_to: None,
                },
                priority: 0,
            },
            actions: vec![Action::Transfer(TransferAction { deposit })],
            signer: signer.clone(),
            prepaid_gas: 0,
            gas_price,
            is_refund,
        }
    }

    fn add_key(
        &mut self,
        account: &AccountId,
        actor: &AccountId,
        public_key: &PublicKey,
        key: &AccessKey,
        height: u64,
    ) -> Result<(), ActionErrorKind> {
        if account != actor {
            return Err(ActionErrorKind::ActorNoPermission {
                account_id: account.clone(),
                actor_id: actor.clone(),
            });
        }
        if self.state.access_key(account, public_key).is_some() {
            return Err(ActionErrorKind::AddKeyAlreadyExists {
                account_id: account.clone(),
                public_key: Box::new(public_key.clone()),
            });
        }
        let nonce = height
            .saturating_sub(1)
            .saturating_mul(ACCESS_KEY_NONCE_RANGE_MULTIPLIER);
        let key = AccessKey {
            nonce,
            permission: key.permission.clone(),
        };
        self.state.set_key(account, public_key, Some(key));
        Ok(())
    }

    fn delete_key(
        &mut self,
        account: &AccountId,
        actor: &AccountId,
        public_key: &PublicKey,
    ) -> Result<(), ActionErrorKind> {
        if account != actor {
            return Err(ActionErrorKind::ActorNoPermission {
                account_id: account.clone(),
                actor_id: actor.clone(),
            });
        }
        if self.state.access_key(account, public_key).is_none() {
            return Err(ActionErrorKind::DeleteKeyDoesNotExist {
                account_id: account.clone(),
                public_key: Box::new(public_key.clone()),
            });
        }
        self.state.set_key(account, public_key, None);
        Ok(())
    }
}
