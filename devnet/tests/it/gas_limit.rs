//! The chunk limit is nearcore's compute limit, whatever the load (seeded random loads): a
//! receipt starts only while the chunk's compute is below it, so only the last receipt of a
//! block may take it over; compute is at least the gas burnt (storage costs more compute).

use std::time::Duration;

use near_primitives::views::TxExecutionStatus;
use payouts_devnet::{DevnetConfig, TGAS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::{config, ft_transfer, function_call, id, start_with, user};

#[tokio::test]
async fn receipts_start_only_below_the_compute_limit_under_random_loads() {
    // A small limit (120 Tgas) so that random loads overflow blocks often.
    let cfg = DevnetConfig {
        gas_limit: 120 * TGAS,
        ..config()
    };
    let net = start_with(cfg).await;
    let signers = net.handle.treasury_signers();
    let token = id("token.devnet");
    let mut rng = StdRng::seed_from_u64(42);
    let hash = net.latest_hash().await;
    let mut expected_transfers = 0;
    for round in 0..3u64 {
        for (k, signer) in signers.iter().enumerate() {
            let n = rng.gen_range(1..=40);
            let actions = (0..n)
                .map(|i| {
                    if rng.gen_bool(0.2) {
                        function_call("claim", serde_json::json!({"amount": "1"}), 2 * TGAS, 0)
                    } else {
                        expected_transfers += 1;
                        ft_transfer(
                            &user(2 * rng.gen_range(0..500)),
                            1,
                            &format!("{round}-{k}-{i}"),
                        )
                    }
                })
                .collect::<Vec<_>>();
            // Claims go to the claims contract in their own transactions.
            let (claims, transfers): (Vec<_>, Vec<_>) = actions.into_iter().partition(|a| {
                matches!(a, near_primitives::action::Action::FunctionCall(f) if f.method_name == "claim")
            });
            let nonce = round * 2 + 1;
            let tx = net.tx_with(signer, &token, transfers, nonce, hash);
            net.send(tx, TxExecutionStatus::None).await.unwrap();
            if !claims.is_empty() {
                let tx = net.tx_with(signer, &id("claims.devnet"), claims, nonce + 1, hash);
                net.send(tx, TxExecutionStatus::None).await.unwrap();
            }
        }
    }
    net.wait_until("all transfers applied", Duration::from_secs(30), |h| {
        h.ft_transfers().len() == expected_transfers && h.backlog() == (0, 0)
    })
    .await;
    let blocks = net.handle.block_gas();
    let busy = blocks.iter().filter(|b| b.used > 0).count();
    assert!(busy >= 4, "the load spread over several blocks: {busy}");
    for b in &blocks {
        if let Some(at) = b.last_admitted_at {
            assert!(
                at < 120 * TGAS,
                "block {} admitted a receipt at compute {at}",
                b.height
            );
        }
        assert!(b.compute >= b.used, "block {}: {b:?}", b.height);
    }
    assert!(
        blocks.iter().any(|b| b.compute > 100 * TGAS),
        "some blocks were full"
    );
    // Token transfers touch storage: compute runs ahead of gas.
    assert!(
        blocks.iter().any(|b| b.compute > b.used + b.used / 10),
        "compute above gas: {blocks:?}"
    );
    net.shutdown().await;
}
