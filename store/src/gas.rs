//! Gas learned from outcomes: what our transactions attached per action and what their receipts burnt
//! (recorded by the indexer when it settles them), read back per token by the distributor to size the gas
//! of its next batches (distributor/src/gas.rs). A batch that failed with "Exceeded the prepaid gas." paid
//! nothing (a receipt's actions revert together) and tells how much was too little.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::error::Result;

/// Records the gas the receipt of our transaction `hash` burnt (idempotent: a replay writes the same value).
pub async fn record_gas_burnt(
    conn: &mut AsyncPgConnection,
    hash: &str,
    gas_burnt: u64,
) -> Result<()> {
    diesel::sql_query("UPDATE transactions SET gas_burnt = $2 WHERE hash = $1")
        .bind::<Text, _>(hash)
        .bind::<BigInt, _>(i64::try_from(gas_burnt).unwrap_or(i64::MAX))
        .execute(conn)
        .await?;
    Ok(())
}

/// The recent gas history of one token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GasSamples {
    /// Gas burnt per action by the receipts of successful transactions, newest first.
    pub burnt_per_action: Vec<u64>,
    /// Gas attached per action by transactions whose receipt failed with "Exceeded the prepaid gas.",
    /// newest first: each is known to be too little.
    pub too_little: Vec<u64>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    gas_per_action: i64,
    #[diesel(sql_type = Nullable<Integer>)]
    action_count: Option<i32>,
    #[diesel(sql_type = Nullable<BigInt>)]
    gas_burnt: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    failure: Option<String>,
}

/// Whether a failure message says a receipt ran out of its prepaid gas.
pub fn is_out_of_gas(message: &str) -> bool {
    message
        .to_ascii_lowercase()
        .contains("exceeded the prepaid gas")
}

/// Gas a receipt burns whatever its methods do: the execution fees of the receipt and of each action, which
/// nearcore charges outside the gas a function call attaches (read from the node's protocol config).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixedFees {
    /// Execution fee of an action receipt.
    pub per_receipt: u64,
    /// Execution fee of one function-call action.
    pub per_action: u64,
}

/// The last `limit` settled transactions of `token` that recorded their gas; a successful receipt's sample
/// is what its methods burnt per action: (burnt − `fixed.per_receipt`) ÷ actions − `fixed.per_action`.
pub async fn gas_samples(
    conn: &mut AsyncPgConnection,
    token: &str,
    limit: i64,
    fixed: FixedFees,
) -> Result<GasSamples> {
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT status, gas_per_action, action_count, gas_burnt, failure FROM transactions \
         WHERE token_contract = $1 AND gas_per_action IS NOT NULL AND status IN ('final', 'failed') \
         ORDER BY finished_at DESC LIMIT $2",
    )
    .bind::<Text, _>(token)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    let mut out = GasSamples::default();
    for r in rows {
        match (r.status.as_str(), r.gas_burnt, r.action_count) {
            ("final", Some(burnt), Some(n)) if n > 0 && burnt >= 0 => {
                let per_action = (burnt as u64)
                    .saturating_sub(fixed.per_receipt)
                    .div_ceil(n as u64)
                    .saturating_sub(fixed.per_action);
                out.burnt_per_action.push(per_action);
            }
            ("failed", _, _) if r.failure.as_deref().is_some_and(is_out_of_gas) => {
                out.too_little.push(r.gas_per_action.max(0) as u64);
            }
            _ => {}
        }
    }
    Ok(out)
}
