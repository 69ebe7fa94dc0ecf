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
use crate::node::Shared;

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
        budget += cfg.claims_per_second * tick.as_secs_f64();
        while budget >= 1.0 {
            budget -= 1.0;
            let i = rng.gen_range(0..signers.len());
            let amount = rng.gen_range(1..=cfg.max_amount.max(1));
            let signer = &signers[i];
            let mut chain = shared.chain.lock();
            let on_chain = chain
                .state()
                .access_key(&signer.get_account_id(), &signer.public_key())
                .map_or(0, |k| k.nonce);
            let nonce = nonces.get(&i).copied().unwrap_or(0).max(on_chain) + 1;
            let tx = Transaction::V0(TransactionV0 {
                signer_id: signer.get_account_id(),
                public_key: signer.public_key(),
                nonce,
                receiver_id: contract.clone(),
                block_hash: chain.head().hash,
                actions: vec![Action::FunctionCall(Box::new(FunctionCallAction {
                    method_name: "claim".into(),
                    args: format!(r#"{{"amount":"{amount}"}}"#).into_bytes(),
                    gas: Gas::from_gas(5 * TGAS),
                    deposit: Balance::ZERO,
                }))],
            });
            match chain.submit(crate::validate::sign(tx, signer)) {
                Ok(_) => {
                    nonces.insert(i, nonce);
                }
                Err(err) => tracing::debug!(?err, "load generator claim rejected"),
            }
        }
    }
}
