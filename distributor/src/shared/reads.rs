//! The chain reads the money guards and registrations rely on, cached for every lane of the process: the
//! treasury's balance of a token (fail closed when unknown: [`crate::guard`]) and which receivers are
//! registered with a token (`storage_balance_of`, registered ones cached for good).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use near_primitives::types::AccountId;
use payouts_store::Yocto;

use crate::guard::{TokenBalance, BALANCE_MAX_AGE};
use crate::tx::Registrations;

use super::Shared;

impl Shared {
    /// The treasury's balance of `token` (asked at most every second), or why it is unknown: nothing may be
    /// signed for the token then ([`crate::guard`]: fail closed). A failed read falls back on the last answer
    /// only while it is younger than [`BALANCE_MAX_AGE`].
    pub(crate) async fn token_balance(&self, contract: &AccountId) -> Result<TokenBalance, String> {
        let token = contract.as_str();
        let cached = self.lock().balances.get(token).copied();
        if let Some((b, at)) = cached {
            if at.elapsed() < Duration::from_secs(1) {
                return Ok(b);
            }
        }
        let read_at = chrono::Utc::now();
        match self.chain.ft_balance(contract, &self.treasury).await {
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

    /// Of `receivers`, those not known to be registered with `contract` (asked with `storage_balance_of`;
    /// registered ones are cached for good), or why that cannot be known: the token's storage deposit is
    /// unreadable (nothing is signed for the token then, rather than a batch that assumes no registration is
    /// needed). A receiver that is not an account id is reported and left out: its claim is failed as
    /// unpayable when the batch is planned ([`crate::plan`]).
    pub(crate) async fn unregistered(
        &self,
        contract: &AccountId,
        receivers: Vec<String>,
    ) -> Result<Registrations, String> {
        let token = contract.as_str();
        let (receivers, bad) = crate::accounts::parse_accounts(receivers);
        for b in bad {
            tracing::warn!(token, receiver = %b.value, reason = %b.reason, "a pending claim's receiver is not an account id; not registering it");
        }
        let known = self.lock().storage_deposit.get(token).copied();
        let deposit = match known {
            Some(d) => d,
            None => {
                #[derive(serde::Deserialize)]
                struct Bounds {
                    min: String,
                }
                let read = self
                    .chain
                    .view::<Bounds>(contract, "storage_balance_bounds", serde_json::json!({}))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|b| storage_deposit(&b.min));
                match read {
                    Ok(d) => {
                        self.lock().storage_deposit.insert(token.to_string(), d);
                        d
                    }
                    Err(e) => {
                        tracing::warn!(token, error = %e, "storage deposit unknown; not signing for the token");
                        return Err(format!(
                            "storage deposit of {token} unknown (not signing for it): {e}"
                        ));
                    }
                }
            }
        };
        let mut out = Registrations {
            deposit,
            ..Default::default()
        };
        let unknown: Vec<AccountId> = {
            let s = self.lock();
            let mut seen = HashSet::new();
            receivers
                .into_iter()
                .filter(|r| !s.registered.contains(&(token.to_string(), r.to_string())))
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
                    self.lock()
                        .registered
                        .insert((token.to_string(), receiver.to_string()));
                }
                // Not registered, or unknown: registering an account twice only refunds the deposit.
                Ok(None) | Err(_) => {
                    out.receivers.insert(receiver.to_string());
                }
            }
        }
        Ok(out)
    }
}

/// The deposit a registration attaches, from `storage_balance_bounds.min`; an unreadable one is an error.
fn storage_deposit(min: &str) -> Result<Yocto, String> {
    min.parse::<Yocto>()
        .map_err(|e| format!("storage_balance_bounds.min `{min}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_storage_deposit_is_an_error_not_zero() {
        assert_eq!(
            storage_deposit("1250000000000000000000"),
            Ok(Yocto(1_250_000_000_000_000_000_000))
        );
        for bad in [
            "",
            "-1",
            "1.5",
            "0x10",
            "340282366920938463463374607431768211456",
        ] {
            assert!(storage_deposit(bad).is_err(), "{bad}");
        }
    }
}
