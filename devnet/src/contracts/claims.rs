//! The claims contract: users call `claim({"amount"})` or `reveal({"token_id"})` and the contract
//! emits a NEP-297 event (`standard: "claims"`). Passing `"fail": true` makes the call panic
//! *after* logging, so tests can see a failed receipt that still carries its logs. `log({"lines"})`
//! writes arbitrary log lines (malformed events for indexer tests).

use serde::{Deserialize, Serialize};

use super::{nep297_log, parse_args, CallCtx, CallEffects, CallError, U128};

#[derive(Deserialize)]
struct ClaimArgs {
    amount: U128,
    #[serde(default)]
    fail: bool,
}

#[derive(Deserialize)]
struct RevealArgs {
    token_id: String,
    #[serde(default)]
    fail: bool,
}

/// `log({"lines": [...]})`: writes the lines as they are. Lets tests put a malformed `EVENT_JSON` line
/// beside valid events in one receipt, as a buggy contract would.
#[derive(Deserialize)]
struct LogArgs {
    lines: Vec<String>,
}

/// Most lines one `log` call writes (nearcore caps logs per execution too).
const MAX_LOG_LINES: usize = 100;

#[derive(Serialize)]
struct ClaimData<'a> {
    account_id: &'a str,
    amount: String,
}

#[derive(Serialize)]
struct RevealData<'a> {
    account_id: &'a str,
    token_id: &'a str,
}

/// The `claim` event line.
pub fn claim_event_log(account_id: &str, amount: u128) -> String {
    nep297_log(
        "claims",
        "claim",
        ClaimData {
            account_id,
            amount: amount.to_string(),
        },
    )
}

/// The `reveal` event line.
pub fn reveal_event_log(account_id: &str, token_id: &str) -> String {
    nep297_log(
        "claims",
        "reveal",
        RevealData {
            account_id,
            token_id,
        },
    )
}

/// Change methods.
pub fn call(method: &str, ctx: &CallCtx<'_>, fx: &mut CallEffects) -> Result<Vec<u8>, CallError> {
    let fail = match method {
        "claim" => {
            let args: ClaimArgs = parse_args(ctx.args)?;
            fx.logs
                .push(claim_event_log(ctx.predecessor.as_str(), args.amount.0));
            args.fail
        }
        "reveal" => {
            let args: RevealArgs = parse_args(ctx.args)?;
            fx.logs
                .push(reveal_event_log(ctx.predecessor.as_str(), &args.token_id));
            args.fail
        }
        "log" => {
            let args: LogArgs = parse_args(ctx.args)?;
            if args.lines.len() > MAX_LOG_LINES {
                return Err(CallError::Panic(format!(
                    "at most {MAX_LOG_LINES} lines per call"
                )));
            }
            fx.logs.extend(args.lines);
            false
        }
        _ => return Err(CallError::MethodNotFound),
    };
    if fail {
        return Err(CallError::Panic("claim failed on request".into()));
    }
    Ok(Vec::new())
}

/// The claims contract has no view methods.
pub fn view(method: &str) -> Result<Vec<u8>, CallError> {
    match method {
        "claim" | "reveal" | "log" => Err(CallError::ProhibitedInView(method.into())),
        _ => Err(CallError::MethodNotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_event_shape() {
        assert_eq!(
            claim_event_log("user-1.devnet", 5),
            r#"EVENT_JSON:{"standard":"claims","version":"1.0.0","event":"claim","data":[{"account_id":"user-1.devnet","amount":"5"}]}"#
        );
        assert!(reveal_event_log("u", "t-1").contains(r#""token_id":"t-1""#));
    }
}
