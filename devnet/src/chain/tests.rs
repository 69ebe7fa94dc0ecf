//! Seeded random loads straight on the chain (no HTTP): a receipt starts only while the chunk has compute left, every
//! valid transaction eventually lands, and receipts run in the order their transactions landed.

use near_crypto::{InMemorySigner, Signer};
use near_primitives::action::{Action, FunctionCallAction};
use near_primitives::transaction::{Transaction, TransactionV0};
use near_primitives::types::{AccountId, Balance, Gas};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Chain, ChainParams};
use crate::config::TGAS;
use crate::fees::Fees;
use crate::genesis::{derived_secret_key, Genesis};
use crate::validate::sign;

fn chain(gas_limit: u64) -> (Chain, Genesis, Vec<AccountId>) {
    let genesis = Genesis::default();
    let built = genesis.build().unwrap();
    let params = ChainParams {
        chain_id: "devnet".into(),
        genesis_height: 1,
        gas_limit: Some(gas_limit),
        min_gas_price: 100_000_000,
        max_gas_price: 10_000_000_000_000_000_000_000,
        validity_period: 10_000,
        fees: Fees::new(100_000_000, 300 * TGAS),
    };
    (Chain::new(params, built.state, 1, 0), genesis, built.users)
}

fn call(method: &str, args: String, gas: u64, deposit: u128) -> Action {
    Action::FunctionCall(Box::new(FunctionCallAction {
        method_name: method.into(),
        args: args.into_bytes(),
        gas: Gas::from_gas(gas),
        deposit: Balance::from_yoctonear(deposit),
    }))
}

#[test]
fn random_loads_admit_receipts_only_below_the_compute_limit() {
    for seed in 0..12u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let limit = rng.gen_range(120..=1_000) * TGAS;
        let (mut chain, genesis, users) = chain(limit);
        let treasury = genesis.treasury.clone();
        let signers: Vec<Signer> = (0..8)
            .map(|i| {
                InMemorySigner::from_secret_key(treasury.clone(), derived_secret_key(&treasury, i))
            })
            .collect();
        let mut nonces = [0u64; 8];
        let mut expected = 0usize;
        let mut landed = Vec::new();
        let mut ts = 2;
        for _step in 0..rng.gen_range(5..25) {
            for _ in 0..rng.gen_range(0..12) {
                let k = rng.gen_range(0..8);
                // A receipt always fits an empty block (its upper bound is below the limit):
                // ~2.7 Tgas per transfer.
                let max_n = (limit / (28 * TGAS / 10)).min(100) as usize;
                let n = rng.gen_range(1..=max_n);
                let gas_each = rng.gen_range(2..=3) * TGAS;
                let actions = (0..n)
                    .map(|i| {
                        let to = &users[2 * rng.gen_range(0..500)];
                        let args = format!(r#"{{"receiver_id":"{to}","amount":"1","memo":"{i}"}}"#);
                        call("ft_transfer", args, gas_each, 1)
                    })
                    .collect();
                nonces[k] += 1;
                let tx = Transaction::V0(TransactionV0 {
                    signer_id: treasury.clone(),
                    public_key: signers[k].public_key(),
                    nonce: nonces[k],
                    receiver_id: genesis.token.account_id.clone(),
                    block_hash: chain.head().hash,
                    actions,
                });
                let hash = chain.submit(sign(tx, &signers[k])).unwrap();
                landed.push(hash);
                expected += n;
            }
            for _ in 0..rng.gen_range(1..3) {
                chain.produce_block(ts);
                ts += 1;
            }
        }
        while chain.pool_len() > 0 || chain.pending_receipts() > 0 {
            chain.produce_block(ts);
            ts += 1;
            assert!(ts < 10_000, "seed {seed}: work never drained");
        }
        for h in 1..=chain.head().height {
            let b = chain.block_at(h).unwrap();
            // nearcore's rule: a receipt starts only while the chunk's compute is below the
            // limit, so only the last one may take the block over it.
            if let Some(at) = b.last_admitted_at {
                assert!(
                    at < limit,
                    "seed {seed}: block {h} admitted a receipt at {at}"
                );
            }
            assert!(b.compute_used >= b.gas_used, "seed {seed}: block {h}");
        }
        // Every transfer applied (all receivers registered, 2–3 Tgas attached each).
        assert_eq!(chain.ft_transfers().len(), expected, "seed {seed}");
        // Receipts ran in the order their transactions were included.
        let mut order: Vec<(u64, u64)> = landed
            .iter()
            .map(|hash| {
                let rec = &chain.txs[hash];
                let receipt = rec.outcome.outcome.receipt_ids[0];
                (rec.height, chain.receipt_records[&receipt].height)
            })
            .collect();
        order.sort();
        assert!(
            order.windows(2).all(|w| w[0].1 <= w[1].1),
            "seed {seed}: receipts out of order"
        );
    }
}

#[test]
fn tx_is_included_next_block_and_executes_in_a_later_one() {
    let (mut chain, genesis, users) = chain(1_000 * TGAS);
    let treasury = genesis.treasury.clone();
    let signer =
        InMemorySigner::from_secret_key(treasury.clone(), derived_secret_key(&treasury, 0));
    let args = format!(r#"{{"receiver_id":"{}","amount":"5"}}"#, users[0]);
    let tx = Transaction::V0(TransactionV0 {
        signer_id: treasury,
        public_key: signer.public_key(),
        nonce: 1,
        receiver_id: genesis.token.account_id.clone(),
        block_hash: chain.head().hash,
        actions: vec![call("ft_transfer", args, 3 * TGAS, 1)],
    });
    let hash = chain.submit(sign(tx, &signer)).unwrap();
    let b2 = chain.produce_block(2);
    assert_eq!(
        b2.shard()
            .unwrap()
            .chunk
            .as_ref()
            .unwrap()
            .transactions
            .len(),
        1
    );
    assert!(chain.ft_transfers().is_empty());
    let b3 = chain.produce_block(3);
    assert_eq!(b3.shard().unwrap().receipt_execution_outcomes.len(), 1);
    assert_eq!(chain.ft_transfers().len(), 1);
    assert_eq!(chain.txs[&hash].height, 2);
}

#[test]
fn a_congested_shard_converts_fewer_transactions() {
    // Lowered thresholds: 50 Tgas of delayed receipts is full congestion; the conversion budget then falls from
    // 500 Tgas to 2 Tgas (≈ two transactions of 5 transfers, ≈1.1 Tgas each to convert).
    let genesis = Genesis::default();
    let built = genesis.build().unwrap();
    let mut fees = Fees::new(100_000_000, 300 * TGAS);
    {
        let c = &mut fees.runtime_config_mut().congestion_control_config;
        c.max_congestion_incoming_gas = Gas::from_gas(50 * TGAS);
        c.min_tx_gas = Gas::from_gas(2 * TGAS);
    }
    let params = ChainParams {
        chain_id: "devnet".into(),
        genesis_height: 1,
        gas_limit: Some(30 * TGAS),
        min_gas_price: 100_000_000,
        max_gas_price: 10_000_000_000_000_000_000_000,
        validity_period: 10_000,
        fees,
    };
    let mut chain = Chain::new(params, built.state, 1, 0);
    let treasury = genesis.treasury.clone();
    let signers: Vec<Signer> = (0..8)
        .map(|i| {
            InMemorySigner::from_secret_key(treasury.clone(), derived_secret_key(&treasury, i))
        })
        .collect();
    let tx = |k: usize, nonce: u64, chain: &Chain| {
        let actions = (0..5)
            .map(|i| {
                let to = &built.users[2 * (k * 5 + i)];
                call(
                    "ft_transfer",
                    format!(r#"{{"receiver_id":"{to}","amount":"1","memo":"{k}-{nonce}-{i}"}}"#),
                    3 * TGAS,
                    1,
                )
            })
            .collect();
        sign(
            Transaction::V0(TransactionV0 {
                signer_id: treasury.clone(),
                public_key: signers[k].public_key(),
                nonce,
                receiver_id: genesis.token.account_id.clone(),
                block_hash: chain.head().hash,
                actions,
            }),
            &signers[k],
        )
    };
    for n in 1..=5 {
        for k in 0..8 {
            let t = tx(k, n, &chain);
            chain.submit(t).unwrap();
        }
    }
    let b = chain.produce_block(2);
    assert_eq!(
        b.shard()
            .unwrap()
            .chunk
            .as_ref()
            .unwrap()
            .transactions
            .len(),
        40
    );
    let b = chain.produce_block(3);
    assert!(
        b.congestion.incoming(
            &chain
                .params()
                .fees
                .runtime_config()
                .congestion_control_config
        ) >= 1.0
    );
    // The RPC rejects new transactions now; ones already in the pool (forwarded earlier) meet the small budget.
    let t = tx(0, 6, &chain);
    assert!(matches!(
        chain.submit(t.clone()),
        Err(near_primitives::errors::InvalidTxError::ShardCongested { .. })
    ));
    for k in 0..8 {
        let t = tx(k, 6, &chain);
        let cost = chain
            .params()
            .fees
            .tx_cost(t.transaction.actions())
            .unwrap();
        chain.admit(t, cost);
    }
    let b = chain.produce_block(4);
    assert_eq!(
        b.shard()
            .unwrap()
            .chunk
            .as_ref()
            .unwrap()
            .transactions
            .len(),
        2
    );
    assert_eq!(chain.pool_len(), 6);
}
