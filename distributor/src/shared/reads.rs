//! The chain reads the money guards and registrations rely on, cached for every lane of the process: the
//! treasury's balance of a token (fail closed when unknown: [`crate::guard`]) and which receivers are
//! registered with a token (`storage_balance_of`, registered ones cached for good).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use near_primitives::types::AccountId;

use crate::guard::{TokenBalance, BALANCE_MAX_AGE};
use crate::tx::Registrations;

use super::Shared;

impl Shared {
    /// The treasury's balance of `token` (asked at most every second), or why it is unknown: nothing may be
    /// signed for the token then ([`crate::guard`]: fail closed). A failed read falls back on the last answer
    /// only while it is younger than [`BALANCE_MAX_AGE`].
    pub(crate) async fn token_balance(&self, token: &str) -> Result<TokenBalance, String> {
        let cached = self.lock().balances.get(token).copied();
        if let Some((b, at)) = cached {
            if at.elapsed() < Duration::from_secs(1) {
                return Ok(b);
            }
        }
        let contract = token
            .parse::<AccountId>()
            .map_err(|_| format!("balance of {token} unknown: not an account id"))?;
        let read_at = chrono::Utc::now();
        match self.chain.ft_balance(&contract, &self.treasury).await {
            Ok(amount) => {
                let b = TokenBalance { amount, read_at };
                self.lock()
                    .balances
                    .insert(token.to_string(), (b, Instant::now()));
                Ok(b)
            }
            Err(e) => {
                crate::metrics::add(&self.metrics.rpc_errors, 1);
                match cached {
                    Some((b, at)) if at.elapsed() < BALANCE_MAX_AGE => {
                        tracing::debug!(error = %e, token, "token balance read failed; using the last one");
                        Ok(b)
                    }
                    _ => Err(format!(
                        "balance of {token} unknown (not signing for it): {e}"
                    )),
                }
            }
        }
    }

    /// Of `receivers`, those not known to be registered with `token` (asked with `storage_balance_of`;
    /// registered ones are cached for good).
    pub(crate) async fn unregistered(&self, token: &str, receivers: Vec<String>) -> Registrations {
        let Ok(contract) = token.parse::<AccountId>() else {
            return Registrations::default();
        };
        let known = self.lock().storage_deposit.get(token).copied();
        let deposit = match known {
            Some(d) => d,
            None => {
                #[derive(serde::Deserialize)]
                struct Bounds {
                    min: String,
                }
                match self
                    .chain
                    .view::<Bounds>(&contract, "storage_balance_bounds", serde_json::json!({}))
                    .await
                    .ok()
                    .and_then(|b| b.min.parse::<u128>().ok())
                {
                    Some(d) => {
                        self.lock().storage_deposit.insert(token.to_string(), d);
                        d
                    }
                    None => return Registrations::default(),
                }
            }
        };
        let mut out = Registrations {
            deposit,
            ..Default::default()
        };
        let unknown: Vec<String> = {
            let s = self.lock();
            let mut seen = HashSet::new();
            receivers
                .into_iter()
                .filter(|r| !s.registered.contains(&(token.to_string(), r.clone())))
                .filter(|r| seen.insert(r.clone()))
                .collect()
        };
        let checks = unknown.iter().map(|r| {
            let contract = contract.clone();
            async move {
                let v: Result<Option<serde_json::Value>, _> = self
                    .chain
                    .view(
                        &contract,
                        "storage_balance_of",
                        serde_json::json!({ "account_id": r }),
                    )
                    .await;
                (r.clone(), v)
            }
        });
        for (receiver, answer) in futures_util::future::join_all(checks).await {
            match answer {
                Ok(Some(_)) => {
                    self.lock().registered.insert((token.to_string(), receiver));
                }
                // Not registered, or unknown: registering an account twice only refunds the deposit.
                Ok(None) | Err(_) => {
                    out.receivers.insert(receiver);
                }
            }
        }
        out
    }
}
