//! Event rules: which NEP-297 events of which contracts become claims, and how a claim is read from an event.

use std::collections::HashSet;
use std::str::FromStr;

use near_lake_framework::near_indexer_primitives::types::AccountId;
use payouts_store::Yocto;
use serde::Deserialize;
use serde_json::Value;

/// The prefix of a NEP-297 log line.
pub const EVENT_PREFIX: &str = "EVENT_JSON:";

/// One `[[indexer.rules]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique name; part of each claim's idempotency key, so never rename a live rule.
    pub name: String,
    /// Contract whose receipts' logs are watched.
    pub contract: String,
    /// NEP-297 `standard` to match.
    pub standard: String,
    /// NEP-297 `event` to match.
    pub event: String,
    /// Field of each `data` item naming the receiver (dots for nesting). Default `account_id`.
    #[serde(default = "default_receiver_field")]
    pub receiver_field: String,
    /// Field of each `data` item holding the amount (a decimal string or a whole number).
    #[serde(default)]
    pub amount_field: Option<String>,
    /// A fixed amount per event instead of `amount_field` (decimal string of yocto units).
    #[serde(default)]
    pub fixed_amount: Option<Yocto>,
    /// The NEP-141 token contract that pays.
    pub token: String,
    /// Memo stored with each claim.
    #[serde(default)]
    pub memo: Option<String>,
}

fn default_receiver_field() -> String {
    "account_id".into()
}

/// How a claim's amount is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmountSource {
    /// Read from this field path of each event item.
    Field(Vec<String>),
    /// The same amount for every event.
    Fixed(Yocto),
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Rule name.
    pub name: String,
    /// Watched contract.
    pub contract: AccountId,
    /// NEP-297 standard.
    pub standard: String,
    /// NEP-297 event.
    pub event: String,
    /// Path to the receiver in an event item.
    pub receiver_path: Vec<String>,
    /// Where the amount comes from.
    pub amount: AmountSource,
    /// Paying token contract.
    pub token: AccountId,
    /// Memo for claims.
    pub memo: Option<String>,
}

/// An invalid rule; the message names the rule and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("indexer.rules[{index}] ({name}): {message}")]
pub struct RuleError {
    /// Position in the list.
    pub index: usize,
    /// Rule name as given.
    pub name: String,
    /// What is wrong.
    pub message: String,
}

fn path(s: &str) -> Vec<String> {
    s.split('.').map(str::to_string).collect()
}

/// Validates the configured rules.
pub fn compile(rules: &[RuleConfig]) -> Result<Vec<Rule>, RuleError> {
    let mut names = HashSet::new();
    rules
        .iter()
        .enumerate()
        .map(|(index, r)| {
            let err = |message: String| RuleError {
                index,
                name: r.name.clone(),
                message,
            };
            if r.name.trim().is_empty() {
                return Err(err("name: must not be empty".into()));
            }
            if !names.insert(r.name.clone()) {
                return Err(err("name: used by another rule".into()));
            }
            let contract = AccountId::from_str(&r.contract).map_err(|e| {
                err(format!(
                    "contract: `{}` is not a valid account id: {e}",
                    r.contract
                ))
            })?;
            let token = AccountId::from_str(&r.token).map_err(|e| {
                err(format!(
                    "token: `{}` is not a valid account id: {e}",
                    r.token
                ))
            })?;
            if r.standard.is_empty() || r.event.is_empty() {
                return Err(err("standard and event: must not be empty".into()));
            }
            if r.receiver_field.is_empty() {
                return Err(err("receiver_field: must not be empty".into()));
            }
            let amount = match (&r.amount_field, r.fixed_amount) {
                (Some(f), None) if !f.is_empty() => AmountSource::Field(path(f)),
                (None, Some(a)) if a.0 > 0 => AmountSource::Fixed(a),
                (None, Some(_)) => return Err(err("fixed_amount: must be more than 0".into())),
                _ => {
                    return Err(err(
                        "set exactly one of amount_field and fixed_amount".into()
                    ))
                }
            };
            Ok(Rule {
                name: r.name.clone(),
                contract,
                standard: r.standard.clone(),
                event: r.event.clone(),
                receiver_path: path(&r.receiver_field),
                amount,
                token,
                memo: r.memo.clone(),
            })
        })
        .collect()
}

/// A NEP-297 event as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct Nep297 {
    /// `standard`
    pub standard: String,
    /// `event`
    pub event: String,
    /// `data` items (a non-array `data` is one item; no `data` is none).
    pub items: Vec<Value>,
}

/// Parses one log line. `None` when it is not an event log at all; `Err` when it claims to be one but is not
/// valid NEP-297.
pub fn parse_event_log(log: &str) -> Option<Result<Nep297, String>> {
    let json = log.strip_prefix(EVENT_PREFIX)?;
    Some(parse_event_json(json))
}

fn parse_event_json(json: &str) -> Result<Nep297, String> {
    let value: Value = serde_json::from_str(json).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = value.as_object().ok_or("event is not a JSON object")?;
    let text = |key: &str| -> Result<String, String> {
        obj.get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("`{key}` missing or not a string"))
    };
    let (standard, event) = (text("standard")?, text("event")?);
    text("version")?;
    let items = match obj.get("data") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items.clone(),
        Some(other) => vec![other.clone()],
    };
    Ok(Nep297 {
        standard,
        event,
        items,
    })
}

fn lookup<'a>(item: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(item, |v, key| v.get(key))
}

/// What one matching event item pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payout {
    /// Receiver account.
    pub receiver: AccountId,
    /// Amount in yocto units.
    pub amount: Yocto,
}

impl Rule {
    /// Whether an event of `contract` with this standard and name is this rule's.
    pub fn matches(&self, contract: &AccountId, event: &Nep297) -> bool {
        &self.contract == contract && self.standard == event.standard && self.event == event.event
    }

    /// Reads receiver and amount from one event item.
    pub fn payout(&self, item: &Value) -> Result<Payout, String> {
        let receiver_key = self.receiver_path.join(".");
        let receiver = lookup(item, &self.receiver_path)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("`{receiver_key}` missing or not a string"))?;
        let receiver = AccountId::from_str(receiver).map_err(|e| {
            format!("`{receiver_key}` = `{receiver}` is not a valid account id: {e}")
        })?;
        let amount = match &self.amount {
            AmountSource::Fixed(a) => *a,
            AmountSource::Field(p) => {
                let key = p.join(".");
                match lookup(item, p) {
                    Some(Value::String(s)) => {
                        s.parse::<Yocto>().map_err(|e| format!("`{key}`: {e}"))?
                    }
                    Some(Value::Number(n)) => {
                        n.as_u64().map(|v| Yocto(u128::from(v))).ok_or_else(|| {
                            format!("`{key}` = {n} is not a whole non-negative number")
                        })?
                    }
                    _ => return Err(format!("`{key}` missing or not a string/number")),
                }
            }
        };
        if amount.0 == 0 {
            return Err("amount is 0".into());
        }
        Ok(Payout { receiver, amount })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule_cfg() -> RuleConfig {
        RuleConfig {
            name: "claims".into(),
            contract: "claims.devnet".into(),
            standard: "claims".into(),
            event: "claim".into(),
            receiver_field: "account_id".into(),
            amount_field: Some("amount".into()),
            fixed_amount: None,
            token: "token.devnet".into(),
            memo: None,
        }
    }

    #[test]
    fn parses_nep297_lines() {
        let ev = parse_event_log(r#"EVENT_JSON:{"standard":"claims","version":"1.0.0","event":"claim","data":[{"a":1},{"b":2}]}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            (ev.standard.as_str(), ev.event.as_str(), ev.items.len()),
            ("claims", "claim", 2)
        );
        assert!(parse_event_log("Transfer 5 from a to b").is_none());
        for bad in [
            "EVENT_JSON:{",
            "EVENT_JSON:[]",
            r#"EVENT_JSON:{"standard":"x","event":"y"}"#,
            r#"EVENT_JSON:{"standard":1,"version":"1","event":"y"}"#,
        ] {
            assert!(parse_event_log(bad).unwrap().is_err(), "{bad}");
        }
        let single = parse_event_log(
            r#"EVENT_JSON:{"standard":"s","version":"1","event":"e","data":{"x":1}}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(single.items.len(), 1);
    }

    #[test]
    fn reads_receiver_and_amount() {
        let rule = &compile(&[rule_cfg()]).unwrap()[0];
        let p = rule
            .payout(&json!({"account_id": "user-1.devnet", "amount": "1000"}))
            .unwrap();
        assert_eq!(
            (p.receiver.as_str(), p.amount),
            ("user-1.devnet", Yocto(1000))
        );
        assert_eq!(
            rule.payout(&json!({"account_id": "u.devnet", "amount": 7}))
                .unwrap()
                .amount,
            Yocto(7)
        );
        for bad in [
            json!({"amount": "1"}),
            json!({"account_id": "Not Valid!", "amount": "1"}),
            json!({"account_id": "u.devnet", "amount": "-1"}),
            json!({"account_id": "u.devnet", "amount": "1.5"}),
            json!({"account_id": "u.devnet", "amount": "0"}),
            json!({"account_id": "u.devnet", "amount": -3}),
            json!({"account_id": "u.devnet"}),
        ] {
            assert!(rule.payout(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nested_fields_and_fixed_amounts() {
        let mut cfg = rule_cfg();
        cfg.receiver_field = "owner.id".into();
        cfg.amount_field = None;
        cfg.fixed_amount = Some(Yocto(5));
        let rule = &compile(&[cfg]).unwrap()[0];
        assert_eq!(
            rule.payout(&json!({"owner": {"id": "a.devnet"}}))
                .unwrap()
                .amount,
            Yocto(5)
        );
    }

    #[test]
    fn invalid_rules_name_the_problem() {
        let mut both = rule_cfg();
        both.fixed_amount = Some(Yocto(1));
        let mut bad_contract = rule_cfg();
        bad_contract.contract = "UPPER.case".into();
        let mut zero = rule_cfg();
        zero.amount_field = None;
        zero.fixed_amount = Some(Yocto(0));
        for (cfg, needle) in [
            (both, "exactly one"),
            (bad_contract, "contract"),
            (zero, "fixed_amount"),
        ] {
            let e = compile(&[cfg]).unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
        }
        let e = compile(&[rule_cfg(), rule_cfg()]).unwrap_err();
        assert!(e.to_string().contains("indexer.rules[1]"), "{e}");
    }
}
