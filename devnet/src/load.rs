//! The load generator: users call `claims.devnet` `claim({"amount"})` at a steady rate, signed
//! with their own keys and submitted through the chain's normal validation path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use near_crypto::{InMemorySigner, Signer};
use near_primitives::action::{Action, FunctionCallAction};
use near_primitives::transaction::{Transaction, TransactionV0};
use near_primitives::types::{AccountId, Balance, Gas};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::TGAS;
use crate::shared::Shared;

/// The claims contract the generator calls.
pub const CLAIMS_CONTRACT: &str = "claims.devnet";

pub(crate) async fn run(shared: Arc<Shared>) {
    let Ok(contract) = CLAIMS_CONTRACT.parse::<AccountId>() else {
        return;
    };
    let cfg = shared.cfg.load.clone();
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let signers: Vec<Signer> = shared
        .users
        .iter()
        .filter_map(|u| {
            let key = shared.keys.get(u)?.first()?;
            Some(InMemorySigner::from_secret_key(
                u.clone(),
                key.secret_key.clone(),
            ))
        })
        .collect();
    if signers.is_empty() {
        return;
    }
    let mut nonces: HashMap<usize, u64> = HashMap::new();
    let tick = Duration::from_millis(20);
    let mut interval = tokio::time::interval(tick);
    let mut stop = shared.stop.subscribe();
    let mut budget = 0.0f64;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let rate = shared.load_rate();
        if rate <= 0.0 {
            budget = 0.0;
            continue;
        }
        budget += rate * tick.as_secs_f64();
        let mut sent = 0u32;
        while budget >= 1.0 {
            budget -= 1.0;
            sent += 1;
            if sent % 8 == 0 {
                // Signing takes tens of microseconds per claim: let the HTTP handlers run in between.
                tokio::task::yield_now().await;
            }
            let i = rng.gen_range(0..signers.len());
            let amount = rng.gen_range(1..=cfg.max_amount.max(1));
            let signer = &signers[i];
            let (on_chain, block_hash) = {
                let chain = shared.chain.lock();
                let on_chain = chain
                    .state()
                    .access_key(&signer.get_account_id(), &signer.public_key())
                    .map_or(0, |k| k.nonce);
                (on_chain, chain.head().hash)
            };
            let nonce = nonces.get(&i).copied().unwrap_or(0).max(on_chain) + 1;
            let tx = Transaction::V0(TransactionV0 {
                signer_id: signer.get_account_id(),
                public_key: signer.public_key(),
                nonce,
                receiver_id: contract.clone(),
                block_hash,
                actions: vec![Action::FunctionCall(Box::new(FunctionCallAction {
                    method_name: "claim".into(),
                    args: format!(r#"{{"amount":"{amount}"}}"#).into_bytes(),
                    gas: Gas::from_gas(5 * TGAS),
                    deposit: Balance::ZERO,
                }))],
            });
            // Signing is the slow part: keep it outside the chain lock.
            let signed = crate::validate::sign(tx, signer);
            let submitted = shared.chain.lock().submit(signed);
            match submitted {
                Ok(_) => {
                    nonces.insert(i, nonce);
                }
                Err(err) => tracing::debug!(?err, "load generator claim rejected"),
            }
        }
    }
}
