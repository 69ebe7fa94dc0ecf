//! Gas, compute and fee arithmetic. Action fees and host-function costs come from
//! near-parameters (`RuntimeConfigStore`, the protocol version this near-primitives speaks); the
//! execution gas of the native contract methods is a constant per method ([`native_gas`]; the
//! token's `ft_transfer` gas is set per token in genesis), chosen close to what the reference
//! contracts burn on mainnet.
//!
//! **Compute.** nearcore admits receipts into a chunk by *compute*, not gas: every parameter has
//! a gas cost (what the user pays) and a compute cost (what the validator spends); they are equal
//! except for the storage host functions, whose compute costs were raised when flat storage
//! shipped (core/parameters/res/runtime_configs/61.yaml, lowered again in 72.yaml): a storage
//! read costs ≈2.8× its gas in compute, a write ≈3.1×. A native method here is modelled with the
//! storage operations the equivalent wasm contract performs ([`storage_ops`]): its compute is its
//! gas plus, per storage operation, the difference between the compute and the gas cost of that
//! host function in the runtime config.

use std::sync::Arc;

use near_parameters::{ActionCosts, ExtCosts, RuntimeConfig, RuntimeConfigStore};
use near_primitives::account::AccessKeyPermission;
use near_primitives::action::Action;
use near_primitives::errors::InvalidTxError;
use near_primitives::types::Gas;
use near_primitives::version::PROTOCOL_VERSION;

/// Execution gas (the "wasm" part, on top of the action fees) of a native contract method.
///
/// - `ft_transfer`: 1.9 Tgas — with the function-call fees an `ft_transfer` receipt burns
///   ≈2.7 Tgas and a whole single-transfer transaction ≈3.1 Tgas, like the reference
///   near-contract-standards token on mainnet; 3 Tgas attached per transfer is enough.
/// - `storage_deposit`: 2.5 Tgas; `claim` / `reveal`: 1.2 Tgas; views called as transactions
///   (`ft_balance_of`, …): 0.6 Tgas; an unknown method: nothing (it fails before running).
pub fn native_gas(method: &str) -> u64 {
    match method {
        "ft_transfer" => 1_900_000_000_000,
        "storage_deposit" => 2_500_000_000_000,
        "claim" | "reveal" | "log" => 1_200_000_000_000,
        "ft_balance_of"
        | "ft_total_supply"
        | "ft_metadata"
        | "storage_balance_of"
        | "storage_balance_bounds" => 600_000_000_000,
        _ => 0,
    }
}

/// Default gas of a token's `ft_transfer` (see [`native_gas`]); a token may set its own in genesis.
pub const DEFAULT_FT_TRANSFER_GAS: u64 = 1_900_000_000_000;

/// The storage operations a native method performs, as the equivalent wasm contract would:
/// `(reads, writes, trie nodes touched, key bytes, value bytes)`.
///
/// - `ft_transfer`: read and write the sender's and the receiver's balance;
/// - `storage_deposit`: read the registration, write it;
/// - `claim` / `reveal`: read and write the claims counter; `log`: nothing;
/// - views called as transactions: one read.
pub fn storage_ops(method: &str) -> (u64, u64, u64, u64, u64) {
    match method {
        "ft_transfer" => (2, 2, 24, 4 * 40, 4 * 16),
        "storage_deposit" => (1, 1, 12, 2 * 40, 2 * 16),
        "claim" | "reveal" => (1, 1, 12, 2 * 16, 2 * 8),
        "ft_balance_of"
        | "ft_total_supply"
        | "ft_metadata"
        | "storage_balance_of"
        | "storage_balance_bounds" => (1, 0, 6, 40, 16),
        _ => (0, 0, 0, 0, 0),
    }
}

/// What converting a transaction into its receipt costs the signer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxCost {
    /// Gas burnt at conversion (send fees).
    pub gas_burnt: u64,
    /// Gas prepaid for the receipt (execution fees + attached gas).
    pub gas_remaining: u64,
    /// Tokens burnt at conversion.
    pub burnt_amount: u128,
    /// Everything the signer pays now: burnt + prepaid gas at the gas price + deposits.
    pub total_cost: u128,
}

/// The fee schedule in force.
#[derive(Clone)]
pub struct Fees {
    config: Arc<RuntimeConfig>,
    /// Gas price of the block being produced, yoctoNEAR per gas (moves every block, see
    /// `Chain::produce_block`).
    pub gas_price: u128,
}

impl Fees {
    /// Fees of the current protocol version, with the per-transaction prepaid gas limit set to
    /// `max_tx_gas`.
    pub fn new(gas_price: u128, max_tx_gas: u64) -> Self {
        let store = RuntimeConfigStore::new(None);
        let mut config = RuntimeConfig::clone(store.get_config(PROTOCOL_VERSION));
        Arc::make_mut(&mut config.wasm_config)
            .limit_config
            .max_total_prepaid_gas = Gas::from_gas(max_tx_gas);
        Self {
            config: Arc::new(config),
            gas_price,
        }
    }

    /// The runtime config (for `EXPERIMENTAL_protocol_config`).
    pub fn runtime_config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The runtime config, to override parts of it (congestion thresholds in tests).
    pub fn runtime_config_mut(&mut self) -> &mut RuntimeConfig {
        Arc::make_mut(&mut self.config)
    }

    /// Compute a native method costs on top of its gas: per storage operation it performs
    /// ([`storage_ops`]), the compute cost minus the gas cost of that host function.
    pub fn storage_compute_surcharge(&self, method: &str) -> u64 {
        let ext = &self.config.wasm_config.ext_costs;
        let extra = |c: ExtCosts, n: u64| {
            ext.compute_cost(c)
                .saturating_sub(ext.gas_cost(c).as_gas())
                .saturating_mul(n)
        };
        let (reads, writes, nodes, key_bytes, value_bytes) = storage_ops(method);
        let per_op = |n: u64| n.max(1);
        extra(ExtCosts::storage_read_base, reads)
            + extra(ExtCosts::storage_write_base, writes)
            + extra(ExtCosts::touching_trie_node, nodes)
            + extra(
                ExtCosts::storage_read_key_byte,
                key_bytes / per_op(reads + writes) * reads,
            )
            + extra(
                ExtCosts::storage_write_key_byte,
                key_bytes / per_op(reads + writes) * writes,
            )
            + extra(
                ExtCosts::storage_read_value_byte,
                value_bytes / per_op(reads + writes) * reads,
            )
            + extra(
                ExtCosts::storage_write_value_byte,
                value_bytes / per_op(reads + writes) * writes,
            )
    }

    /// Maximum number of actions per transaction / receipt.
    pub fn max_actions(&self) -> u64 {
        self.config.wasm_config.limit_config.max_actions_per_receipt
    }

    /// Maximum prepaid gas of one transaction.
    pub fn max_prepaid_gas(&self) -> u64 {
        self.config
            .wasm_config
            .limit_config
            .max_total_prepaid_gas
            .as_gas()
    }

    fn fee(&self, cost: ActionCosts) -> (u64, u64) {
        let f = self.config.fees.fee(cost);
        // The devnet has one shard: sender-is-receiver makes no difference to the fees used.
        (f.send_not_sir.as_gas(), f.execution.as_gas())
    }

    /// (send, exec) fees of one action.
    pub fn action_fees(&self, action: &Action) -> (u64, u64) {
        let scaled = |(s, e): (u64, u64), n: u64| (s.saturating_mul(n), e.saturating_mul(n));
        let add =
            |(a, b): (u64, u64), (c, d): (u64, u64)| (a.saturating_add(c), b.saturating_add(d));
        match action {
            Action::FunctionCall(fc) => {
                let bytes = (fc.method_name.len() + fc.args.len()) as u64;
                add(
                    self.fee(ActionCosts::function_call_base),
                    scaled(self.fee(ActionCosts::function_call_byte), bytes),
                )
            }
            Action::Transfer(_) => self.fee(ActionCosts::transfer),
            Action::AddKey(add_key) => match &add_key.access_key.permission {
                AccessKeyPermission::FullAccess => self.fee(ActionCosts::add_full_access_key),
                AccessKeyPermission::FunctionCall(p) => {
                    let bytes: u64 = p.method_names.iter().map(|m| m.len() as u64 + 1).sum();
                    add(
                        self.fee(ActionCosts::add_function_call_key_base),
                        scaled(self.fee(ActionCosts::add_function_call_key_byte), bytes),
                    )
                }
            },
            Action::DeleteKey(_) => self.fee(ActionCosts::delete_key),
            _ => (0, 0),
        }
    }

    /// (send, exec) fee of creating one action receipt.
    pub fn receipt_fees(&self) -> (u64, u64) {
        self.fee(ActionCosts::new_action_receipt)
    }

    /// Gas a receipt with these actions burns at most when executed: receipt and action
    /// execution fees plus, per function call, the smaller of attached gas and method gas.
    pub fn receipt_gas_upper_bound(&self, actions: &[Action]) -> u64 {
        actions.iter().fold(self.receipt_fees().1, |acc, a| {
            let run = match a {
                Action::FunctionCall(fc) => fc.gas.as_gas().min(native_gas(&fc.method_name)),
                _ => 0,
            };
            acc.saturating_add(self.action_fees(a).1)
                .saturating_add(run)
        })
    }

    /// Cost of converting a transaction with these actions (nearcore's `tx_cost`).
    pub fn tx_cost(&self, actions: &[Action]) -> Result<TxCost, InvalidTxError> {
        let (recv_send, recv_exec) = self.receipt_fees();
        let mut gas_burnt = recv_send;
        let mut gas_remaining = recv_exec;
        let mut deposits: u128 = 0;
        for a in actions {
            let (send, exec) = self.action_fees(a);
            gas_burnt = gas_burnt
                .checked_add(send)
                .ok_or(InvalidTxError::CostOverflow)?;
            gas_remaining = gas_remaining
                .checked_add(exec)
                .and_then(|g| g.checked_add(a.get_prepaid_gas().as_gas()))
                .ok_or(InvalidTxError::CostOverflow)?;
            deposits = deposits
                .checked_add(a.get_deposit_balance().as_yoctonear())
                .ok_or(InvalidTxError::CostOverflow)?;
        }
        let burnt_amount = u128::from(gas_burnt)
            .checked_mul(self.gas_price)
            .ok_or(InvalidTxError::CostOverflow)?;
        let total_cost = u128::from(gas_remaining)
            .checked_mul(self.gas_price)
            .and_then(|c| c.checked_add(burnt_amount))
            .and_then(|c| c.checked_add(deposits))
            .ok_or(InvalidTxError::CostOverflow)?;
        Ok(TxCost {
            gas_burnt,
            gas_remaining,
            burnt_amount,
            total_cost,
        })
    }

    /// Tokens for an amount of gas.
    pub fn gas_amount(&self, gas: u64) -> u128 {
        u128::from(gas).saturating_mul(self.gas_price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TGAS;
    use near_primitives::action::FunctionCallAction;
    use near_primitives::types::Balance;

    fn ft_transfer(gas: u64) -> Action {
        Action::FunctionCall(Box::new(FunctionCallAction {
            method_name: "ft_transfer".into(),
            args: br#"{"receiver_id":"user-0.devnet","amount":"1"}"#.to_vec(),
            gas: Gas::from_gas(gas),
            deposit: Balance::from_yoctonear(1),
        }))
    }

    #[test]
    fn function_call_fees_are_nearcore_protocol_66_plus() {
        let fees = Fees::new(100_000_000, 300 * TGAS);
        let (send, exec) = fees.action_fees(&ft_transfer(3 * TGAS));
        // 0.2 Tgas send and 0.78 Tgas exec, plus ~2.2 Ggas per byte of name and args.
        assert!(send > 200_000_000_000 && send < 210_000_000_000, "{send}");
        assert!(exec > 780_000_000_000 && exec < 790_000_000_000, "{exec}");
        assert_eq!(fees.receipt_fees().0, 108_059_500_000);
        assert_eq!(fees.max_actions(), 100);
    }

    #[test]
    fn storage_costs_about_three_times_more_compute_than_gas() {
        let fees = Fees::new(100_000_000, 1_000 * TGAS);
        let ext = &fees.runtime_config().wasm_config.ext_costs;
        for c in [ExtCosts::storage_read_base, ExtCosts::storage_write_base] {
            let (gas, compute) = (ext.gas_cost(c).as_gas(), ext.compute_cost(c));
            assert!(
                compute > 2 * gas && compute < 4 * gas,
                "{c:?}: {gas} / {compute}"
            );
        }
        // ft_transfer: 2 reads + 2 writes ≈ 0.48 Tcompute on top of its 1.9 Tgas.
        let extra = fees.storage_compute_surcharge("ft_transfer");
        assert!(
            extra > 450_000_000_000 && extra < 520_000_000_000,
            "{extra}"
        );
        assert_eq!(fees.storage_compute_surcharge("log"), 0);
    }

    #[test]
    fn single_transfer_burns_about_three_tgas() {
        let fees = Fees::new(100_000_000, 300 * TGAS);
        let actions = [ft_transfer(3 * TGAS)];
        let cost = fees.tx_cost(&actions).unwrap();
        let total = cost.gas_burnt + fees.receipt_gas_upper_bound(&actions);
        assert!(
            total > 2_900_000_000_000 && total < 3_300_000_000_000,
            "{total}"
        );
        assert_eq!(
            cost.total_cost,
            fees.gas_amount(cost.gas_burnt) + fees.gas_amount(cost.gas_remaining) + 1
        );
    }
}
