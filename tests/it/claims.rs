//! Claims for the kill and fault runs, with the token balances they must leave.

use std::collections::HashMap;
use std::ops::Range;

use payouts_devnet::DevnetHandle;
use payouts_store::claims::NewClaim;
use payouts_store::Yocto;

/// Manual claims `{prefix}-{i}` for each `i` of `ids`: amount `1 + i`, round-robin over the devnet's 500
/// registered users. Each amount is added to its receiver's balance in `expected` (which starts, for a
/// receiver it does not hold yet, at the receiver's balance now).
pub fn manual_claims(
    devnet: &DevnetHandle,
    prefix: &str,
    ids: Range<usize>,
    expected: &mut HashMap<String, u128>,
) -> Vec<NewClaim> {
    ids.map(|i| {
        let receiver = format!("user-{}.devnet", 2 * (i % 500));
        let amount = 1 + i as u128;
        *expected.entry(receiver.clone()).or_insert_with(|| {
            let id: near_primitives::types::AccountId = receiver.parse().unwrap();
            devnet.ft_balance(&id).unwrap()
        }) += amount;
        NewClaim::manual(
            &format!("{prefix}-{i}"),
            "d",
            "token.devnet",
            &receiver,
            Yocto(amount),
            None,
        )
    })
    .collect()
}
