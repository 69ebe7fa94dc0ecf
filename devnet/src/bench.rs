//! Throughput of the chain itself, without HTTP: signed batches of 100 `ft_transfer`s go through
//! RPC validation (signature included), inclusion and execution with the gas limit lifted.

use std::time::{Duration, Instant};

use near_crypto::{InMemorySigner, Signer};
use near_primitives::action::{Action, FunctionCallAction};
use near_primitives::transaction::{SignedTransaction, Transaction, TransactionV0};
use near_primitives::types::{Balance, Gas};

use crate::chain::{Chain, ChainParams};
use crate::config::TGAS;
use crate::fees::Fees;
use crate::genesis::{derived_secret_key, Genesis};

/// What [`bench_apply`] measured.
#[derive(Debug, Clone, Copy)]
pub struct BenchReport {
    /// `ft_transfer` actions applied successfully.
    pub actions: u64,
    /// Blocks produced.
    pub blocks: u64,
    /// Wall time of submission + production.
    pub elapsed: Duration,
}

impl BenchReport {
    /// Applied actions per second.
    pub fn actions_per_second(&self) -> f64 {
        self.actions as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// Applies `batches` transactions of 100 `ft_transfer`s each from the 8 treasury keys to
/// registered users, producing blocks until every receipt has executed.
pub fn bench_apply(batches: u64) -> BenchReport {
    let genesis = Genesis::default();
    let Ok(built) = genesis.build() else {
        return BenchReport {
            actions: 0,
            blocks: 0,
            elapsed: Duration::ZERO,
        };
    };
    let params = ChainParams {
        chain_id: genesis.chain_id.clone(),
        genesis_height: genesis.genesis_height,
        gas_limit: None,
        min_gas_price: genesis.min_gas_price.0,
        max_gas_price: genesis.max_gas_price.0,
        validity_period: 1_000_000,
        fees: Fees::new(genesis.gas_price.0, 300 * TGAS),
    };
    let users = built.users.clone();
    let mut chain = Chain::new(params, built.state, 1, 0);
    let signers: Vec<Signer> = (0..8)
        .map(|i| {
            InMemorySigner::from_secret_key(
                genesis.treasury.clone(),
                derived_secret_key(&genesis.treasury, i),
            )
        })
        .collect();
    let block_hash = chain.head().hash;
    let txs: Vec<SignedTransaction> = (0..batches)
        .map(|b| {
            let signer = &signers[(b % 8) as usize];
            let actions = (0..100u64)
                .map(|i| {
                    let receiver = &users[((b * 100 + i) * 2 % users.len() as u64) as usize];
                    let args = format!(
                        r#"{{"receiver_id":"{receiver}","amount":"1","memo":"claim-{b}-{i}"}}"#
                    );
                    Action::FunctionCall(Box::new(FunctionCallAction {
                        method_name: "ft_transfer".into(),
                        args: args.into_bytes(),
                        gas: Gas::from_gas(3 * TGAS),
                        deposit: Balance::from_yoctonear(1),
                    }))
                })
                .collect();
            let tx = Transaction::V0(TransactionV0 {
                signer_id: genesis.treasury.clone(),
                public_key: signer.public_key(),
                nonce: b / 8 + 1,
                receiver_id: genesis.token.account_id.clone(),
                block_hash,
                actions,
            });
            crate::validate::sign(tx, signer)
        })
        .collect();
    let before = chain.ft_transfers().len();
    let start = Instant::now();
    let mut blocks = 0;
    for tx in txs {
        if let Err(err) = chain.submit(tx) {
            tracing::warn!(?err, "bench transaction rejected");
        }
    }
    let mut ts = 2;
    while chain.pool_len() > 0 || chain.pending_receipts() > 0 {
        chain.produce_block(ts);
        ts += 1;
        blocks += 1;
    }
    let elapsed = start.elapsed();
    BenchReport {
        actions: (chain.ft_transfers().len() - before) as u64,
        blocks,
        elapsed,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_applies_every_transfer() {
        let report = super::bench_apply(4);
        assert_eq!(report.actions, 400);
        assert!(report.blocks >= 2, "inclusion, then execution");
    }
}
