//! Native implementations of the devnet's built-in contracts. They run inside a receipt: they
//! read the call's arguments, change [`State`] through its journaled methods, append logs, and
//! return a value or panic with the same messages as the reference Rust contracts.

pub mod claims;
pub mod ft;

use near_primitives::types::AccountId;

use crate::state::{ContractKind, State};

/// A successful `ft_transfer`, as the token ledger applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FtTransferEvent {
    /// Token contract.
    pub token: AccountId,
    /// Sender (`old_owner_id`).
    pub sender: AccountId,
    /// Receiver (`new_owner_id`).
    pub receiver: AccountId,
    /// Amount in base units.
    pub amount: u128,
    /// Memo, if any.
    pub memo: Option<String>,
}

/// Why a native call failed; rendered like nearcore's `FunctionCallError`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// `env::panic_str` — becomes `ExecutionError("Smart contract panicked: …")`.
    Panic(String),
    /// The method does not exist — `MethodResolveError(MethodNotFound)`.
    MethodNotFound,
    /// A change method called in a view — `HostError(ProhibitedInView)`.
    ProhibitedInView(String),
}

impl CallError {
    fn panic(msg: impl Into<String>) -> Self {
        Self::Panic(msg.into())
    }
}

/// The context of one function call action.
pub struct CallCtx<'a> {
    /// The contract account.
    pub contract: &'a AccountId,
    /// Who called (`env::predecessor_account_id`).
    pub predecessor: &'a AccountId,
    /// Attached deposit, yoctoNEAR.
    pub deposit: u128,
    /// Raw JSON arguments.
    pub args: &'a [u8],
}

/// Side outputs of a call, kept only if the whole receipt succeeds (except logs, which a failed
/// receipt keeps, as nearcore does).
#[derive(Default)]
pub struct CallEffects {
    /// Log lines.
    pub logs: Vec<String>,
    /// NEAR transfers the contract started (promises), as (receiver, amount).
    pub transfers: Vec<(AccountId, u128)>,
    /// `ft_transfer` events applied.
    pub ft_transfers: Vec<FtTransferEvent>,
}

/// Runs a change call of `method` on a contract of kind `kind`.
pub fn call(
    state: &mut State,
    kind: ContractKind,
    method: &str,
    ctx: &CallCtx<'_>,
    fx: &mut CallEffects,
) -> Result<Vec<u8>, CallError> {
    match kind {
        ContractKind::Ft => ft::call(state, method, ctx, fx),
        ContractKind::Claims => claims::call(method, ctx, fx),
    }
}

/// Runs a view call (`query` `call_function`).
pub fn view(
    state: &State,
    kind: ContractKind,
    contract: &AccountId,
    method: &str,
    args: &[u8],
) -> Result<Vec<u8>, CallError> {
    match kind {
        ContractKind::Ft => ft::view(state, contract, method, args),
        ContractKind::Claims => claims::view(method),
    }
}

/// Parses JSON arguments like near-sdk does (missing/invalid → the sdk's panic message).
fn parse_args<T: serde::de::DeserializeOwned>(args: &[u8]) -> Result<T, CallError> {
    let args = if args.is_empty() {
        b"{}".as_slice()
    } else {
        args
    };
    serde_json::from_slice(args)
        .map_err(|_| CallError::panic("Failed to deserialize input from JSON."))
}

/// A u128 passed as a JSON string, like near-sdk's `U128`.
#[derive(Debug, Clone, Copy)]
struct U128(u128);

impl<'de> serde::Deserialize<'de> for U128 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map(U128).map_err(serde::de::Error::custom)
    }
}

fn json_string(s: &str) -> Vec<u8> {
    serde_json::to_vec(s).unwrap_or_default()
}

/// A NEP-297 log line with a single-element `data` array, fields in the order the standard
/// libraries serialize them.
fn nep297_log<T: serde::Serialize>(standard: &str, event: &str, data: T) -> String {
    #[derive(serde::Serialize)]
    struct Event<'a, T> {
        standard: &'a str,
        version: &'a str,
        event: &'a str,
        data: [T; 1],
    }
    let ev = Event {
        standard,
        version: "1.0.0",
        event,
        data: [data],
    };
    format!(
        "EVENT_JSON:{}",
        serde_json::to_string(&ev).unwrap_or_default()
    )
}
