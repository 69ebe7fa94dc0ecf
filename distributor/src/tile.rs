//! Batch size from what a chunk admits. nearcore (runtime `process_receipts`, and the devnet after it)
//! converts a chunk's transactions first, then starts waiting receipts oldest first **while the chunk's
//! compute used is below its limit**: the check comes before each receipt, so the last one admitted may
//! overshoot, and a receipt that would start at or past the limit waits a block. Our receipts are whole
//! batches (all actions of a transaction to one contract are one receipt), so how many transfers a chunk
//! executes depends on the batch size, not only on the limit: at 3.4 Tcompute a transfer, 100-transfer
//! receipts run three to a 1,000 Tcompute chunk (the third starts at ~700), while 94-transfer ones run four
//! (the fourth starts just below 1,000): 376 transfers a block instead of 300.
//!
//! [`tile`] picks the batch size whose whole receipts tile the chunk best, from a [`ChunkModel`] built from
//! the node's fees and the gas a transfer is learned to burn ([`crate::gas`]); the compute of the method
//! part is its gas × `compute_per_gas_percent` (storage operations cost ≈3× more compute than gas since
//! flat storage: runtime_configs 61.yaml / 72.yaml; a NEP-141 `ft_transfer` comes to ≈ +25 %). A margin
//! (`tile_margin_percent`) keeps an estimate that is a little low from costing a whole receipt a block:
//! too high only picks a slightly smaller batch. Pure, so the arithmetic is tested below.

/// What one chunk admits and what our batches cost in it, all in gas units of compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkModel {
    /// The chunk's compute (= gas) limit.
    pub chunk_limit: u64,
    /// Compute of converting a transaction, besides its actions (the receipt's send fee).
    pub per_tx_conversion: u64,
    /// Compute of converting one `ft_transfer` action (its send fee).
    pub per_transfer_conversion: u64,
    /// Compute of executing a receipt, besides its actions (the receipt's execution fee).
    pub per_receipt: u64,
    /// Compute of executing one `ft_transfer`: its execution fee plus the method's compute.
    pub per_transfer: u64,
    /// Safety margin on every cost (percent).
    pub margin_percent: u64,
}

/// How batches tile a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Transfers per transaction.
    pub transfers_per_tx: usize,
    /// Receipts of that size a chunk starts (under a backlog of them).
    pub receipts_per_chunk: u64,
    /// Transfers a chunk executes.
    pub transfers_per_chunk: u64,
}

impl ChunkModel {
    fn inflate(&self, c: u64) -> u128 {
        u128::from(c) * u128::from(100 + self.margin_percent) / 100
    }

    /// Receipts of `n` transfers a chunk starts under a backlog of them: the largest `k` with `k`
    /// conversions (as many transactions arrive per block as execute, in the steady state) and `k − 1`
    /// receipts executed before the `k`-th starts, below the limit.
    pub fn receipts_admitted(&self, n: usize) -> u64 {
        let n = n as u128;
        let conv =
            self.inflate(self.per_tx_conversion) + n * self.inflate(self.per_transfer_conversion);
        let receipt = self.inflate(self.per_receipt) + n * self.inflate(self.per_transfer);
        let limit = u128::from(self.chunk_limit);
        if conv >= limit {
            // Even the conversions fill it: one receipt a block at best.
            return 1;
        }
        // k·conv + (k − 1)·receipt < limit  ⇔  k < (limit + receipt) / (conv + receipt)
        let per = conv + receipt;
        let k = (limit + receipt).div_ceil(per).saturating_sub(1).max(1);
        u64::try_from(k).unwrap_or(u64::MAX)
    }
}

/// The batch size, up to `max_per_tx` (the action cap, the gas cap and the configuration), that executes
/// the most transfers per chunk; among equals the largest (fewest transactions).
pub fn tile(model: &ChunkModel, max_per_tx: usize) -> Tiling {
    if model.chunk_limit == u64::MAX {
        // No limit (the devnet's `lift_gas_limit`): nothing to tile, the largest batches are best.
        let n = max_per_tx.max(1);
        return Tiling {
            transfers_per_tx: n,
            receipts_per_chunk: u64::MAX,
            transfers_per_chunk: u64::MAX,
        };
    }
    let mut best = Tiling {
        transfers_per_tx: max_per_tx.max(1),
        receipts_per_chunk: model.receipts_admitted(max_per_tx.max(1)),
        transfers_per_chunk: 0,
    };
    best.transfers_per_chunk = best.receipts_per_chunk * best.transfers_per_tx as u64;
    for n in (1..max_per_tx).rev() {
        let k = model.receipts_admitted(n);
        let per_chunk = k.saturating_mul(n as u64);
        if per_chunk > best.transfers_per_chunk {
            best = Tiling {
                transfers_per_tx: n,
                receipts_per_chunk: k,
                transfers_per_chunk: per_chunk,
            };
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_000_000_000_000;
    const G: u64 = 1_000_000_000;

    /// The devnet's nearcore-like defaults: 1,000 Tgas chunks, protocol fees, a 1.9 Tgas `ft_transfer`
    /// with 0.48 Tcompute of storage surcharge.
    fn devnet(margin: u64) -> ChunkModel {
        ChunkModel {
            chunk_limit: 1_000 * T,
            per_tx_conversion: 108 * G,
            per_transfer_conversion: 202 * G,
            per_receipt: 108 * G,
            per_transfer: 780 * G + 2_380 * G,
            margin_percent: margin,
        }
    }

    /// What the chunk really does with receipts of `n` (exact costs, no margin), as the devnet's producer
    /// loop does it: `converted` transactions of `n` first, then receipts while compute < limit.
    fn simulate(m: &ChunkModel, n: u64, converted: u64) -> u64 {
        let mut used = (m.per_tx_conversion + n * m.per_transfer_conversion) * converted;
        let mut k = 0;
        while used < m.chunk_limit {
            used += m.per_receipt + n * m.per_transfer;
            k += 1;
        }
        k * n
    }

    #[test]
    fn hundred_transfer_receipts_waste_a_quarter_of_the_chunk() {
        let m = devnet(0);
        assert_eq!(m.receipts_admitted(100), 3);
        let t = tile(&m, 100);
        assert!(t.transfers_per_chunk >= 370, "{t:?}");
        assert_eq!(t.receipts_per_chunk, 4);
        assert!((90..100).contains(&t.transfers_per_tx), "{t:?}");
    }

    #[test]
    fn the_margin_keeps_a_low_estimate_from_losing_a_receipt() {
        let exact = devnet(0);
        let chosen = tile(&devnet(3), 100);
        // The real cost is 2 % above the estimate: the chosen size still starts four receipts.
        let mut real = exact;
        real.per_transfer = exact.per_transfer * 102 / 100;
        real.per_transfer_conversion = exact.per_transfer_conversion * 102 / 100;
        assert_eq!(
            real.receipts_admitted(chosen.transfers_per_tx),
            4,
            "{chosen:?}"
        );
        // And it beats the fixed 100 against the simulated producer.
        assert!(
            simulate(&real, chosen.transfers_per_tx as u64, 4) > simulate(&real, 100, 3),
            "{chosen:?}"
        );
    }

    #[test]
    fn caps_and_degenerate_models() {
        let m = devnet(3);
        // A small cap: nothing larger is chosen.
        assert!(tile(&m, 10).transfers_per_tx <= 10);
        assert_eq!(tile(&m, 1).transfers_per_tx, 1);
        assert_eq!(tile(&m, 0).transfers_per_tx, 1);
        // Heavy transfers (a 20 Tgas token): fewer per receipt still tile.
        let heavy = ChunkModel {
            per_transfer: 20 * T,
            ..m
        };
        let t = tile(&heavy, 100);
        assert!(t.transfers_per_chunk >= 48, "{t:?}");
        // A lifted limit: the cap.
        let lifted = ChunkModel {
            chunk_limit: u64::MAX,
            ..m
        };
        assert_eq!(tile(&lifted, 100).transfers_per_tx, 100);
        // A limit the conversions alone fill.
        let tiny = ChunkModel {
            chunk_limit: T,
            ..m
        };
        assert_eq!(tiny.receipts_admitted(100), 1);
        assert_eq!(tile(&tiny, 100).transfers_per_tx, 100);
    }
}
