//! The NEP-141 token, behaving like near-contract-standards' `FungibleToken` with storage
//! management: same methods, same panic messages, same NEP-297 `ft_transfer` event.

use near_primitives::types::AccountId;
use serde::{Deserialize, Serialize};

use super::{
    json_string, nep297_log, parse_args, CallCtx, CallEffects, CallError, FtTransferEvent, U128,
};
use crate::state::State;

/// Storage deposit needed to register an account: 125 bytes × 10^19 yocto/byte = 0.00125 NEAR.
pub const STORAGE_BALANCE: u128 = 1_250_000_000_000_000_000_000;

#[derive(Deserialize)]
struct TransferArgs {
    receiver_id: AccountId,
    amount: U128,
    memo: Option<String>,
}

#[derive(Deserialize)]
struct AccountArgs {
    account_id: AccountId,
}

#[derive(Deserialize)]
struct StorageDepositArgs {
    account_id: Option<AccountId>,
    #[allow(dead_code)] // accepted for NEP-145 compatibility: min == max, so it changes nothing
    registration_only: Option<bool>,
}

#[derive(Serialize)]
struct TransferEventData<'a> {
    old_owner_id: &'a str,
    new_owner_id: &'a str,
    amount: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    memo: Option<&'a str>,
}

/// The log line near-contract-standards writes for one transfer.
pub fn transfer_event_log(
    sender: &str,
    receiver: &str,
    amount: u128,
    memo: Option<&str>,
) -> String {
    let data = TransferEventData {
        old_owner_id: sender,
        new_owner_id: receiver,
        amount: amount.to_string(),
        memo,
    };
    nep297_log("nep141", "ft_transfer", data)
}

fn storage_balance_json(registered: bool) -> Vec<u8> {
    if registered {
        format!(r#"{{"total":"{STORAGE_BALANCE}","available":"0"}}"#).into_bytes()
    } else {
        b"null".to_vec()
    }
}

/// View methods.
pub fn view(
    state: &State,
    contract: &AccountId,
    method: &str,
    args: &[u8],
) -> Result<Vec<u8>, CallError> {
    let Some(ledger) = state.ft(contract) else {
        return Err(CallError::MethodNotFound);
    };
    match method {
        "ft_balance_of" => {
            let a: AccountArgs = parse_args(args)?;
            let balance = ledger.balances.get(&a.account_id).copied().unwrap_or(0);
            Ok(json_string(&balance.to_string()))
        }
        "ft_total_supply" => Ok(json_string(&ledger.total_supply.to_string())),
        "ft_metadata" => Ok(serde_json::to_vec(&ledger.metadata).unwrap_or_default()),
        "storage_balance_of" => {
            let a: AccountArgs = parse_args(args)?;
            Ok(storage_balance_json(
                ledger.balances.contains_key(&a.account_id),
            ))
        }
        "storage_balance_bounds" => {
            Ok(format!(r#"{{"min":"{STORAGE_BALANCE}","max":"{STORAGE_BALANCE}"}}"#).into_bytes())
        }
        "ft_transfer" | "storage_deposit" => Err(CallError::ProhibitedInView(method.into())),
        _ => Err(CallError::MethodNotFound),
    }
}

/// Change methods (views are callable as transactions too).
pub fn call(
    state: &mut State,
    method: &str,
    ctx: &CallCtx<'_>,
    fx: &mut CallEffects,
) -> Result<Vec<u8>, CallError> {
    match method {
        "ft_transfer" => ft_transfer(state, ctx, fx),
        "storage_deposit" => storage_deposit(state, ctx, fx),
        _ => view(state, ctx.contract, method, ctx.args),
    }
}

fn ft_transfer(
    state: &mut State,
    ctx: &CallCtx<'_>,
    fx: &mut CallEffects,
) -> Result<Vec<u8>, CallError> {
    if ctx.deposit != 1 {
        return Err(CallError::panic(
            "Requires attached deposit of exactly 1 yoctoNEAR",
        ));
    }
    let args: TransferArgs = parse_args(ctx.args)?;
    let sender = ctx.predecessor;
    let receiver = &args.receiver_id;
    let amount = args.amount.0;
    if sender == receiver {
        return Err(CallError::panic("Sender and receiver should be different"));
    }
    if amount == 0 {
        return Err(CallError::panic("The amount should be a positive number"));
    }
    let ledger = state.ft(ctx.contract).ok_or(CallError::MethodNotFound)?;
    let not_registered =
        |a: &AccountId| CallError::Panic(format!("The account {a} is not registered"));
    let sender_balance = *ledger
        .balances
        .get(sender)
        .ok_or_else(|| not_registered(sender))?;
    let new_sender = sender_balance
        .checked_sub(amount)
        .ok_or_else(|| CallError::panic("The account doesn't have enough balance"))?;
    let receiver_balance = *ledger
        .balances
        .get(receiver)
        .ok_or_else(|| not_registered(receiver))?;
    let new_receiver = receiver_balance
        .checked_add(amount)
        .ok_or_else(|| CallError::panic("Balance overflow"))?;
    state.set_ft_balance(ctx.contract, sender, Some(new_sender));
    state.set_ft_balance(ctx.contract, receiver, Some(new_receiver));
    fx.logs.push(transfer_event_log(
        sender.as_str(),
        receiver.as_str(),
        amount,
        args.memo.as_deref(),
    ));
    fx.ft_transfers.push(FtTransferEvent {
        token: ctx.contract.clone(),
        sender: sender.clone(),
        receiver: receiver.clone(),
        amount,
        memo: args.memo,
    });
    Ok(Vec::new())
}

fn storage_deposit(
    state: &mut State,
    ctx: &CallCtx<'_>,
    fx: &mut CallEffects,
) -> Result<Vec<u8>, CallError> {
    let args: StorageDepositArgs = parse_args(ctx.args)?;
    let account = args.account_id.unwrap_or_else(|| ctx.predecessor.clone());
    let registered = state
        .ft(ctx.contract)
        .ok_or(CallError::MethodNotFound)?
        .balances
        .contains_key(&account);
    if registered {
        fx.logs
            .push("The account is already registered, refunding the deposit".into());
        if ctx.deposit > 0 {
            fx.transfers.push((ctx.predecessor.clone(), ctx.deposit));
        }
    } else {
        if ctx.deposit < STORAGE_BALANCE {
            return Err(CallError::panic(
                "The attached deposit is less than the minimum storage balance",
            ));
        }
        state.set_ft_balance(ctx.contract, &account, Some(0));
        let refund = ctx.deposit - STORAGE_BALANCE;
        if refund > 0 {
            fx.transfers.push((ctx.predecessor.clone(), refund));
        }
    }
    Ok(storage_balance_json(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_matches_near_contract_standards() {
        assert_eq!(
            transfer_event_log("a.near", "b.near", 10, Some("m")),
            r#"EVENT_JSON:{"standard":"nep141","version":"1.0.0","event":"ft_transfer","data":[{"old_owner_id":"a.near","new_owner_id":"b.near","amount":"10","memo":"m"}]}"#
        );
        assert!(!transfer_event_log("a.near", "b.near", 10, None).contains("memo"));
    }
}
