//! The RPC front: several simulated nodes behind the one RPC URL, as public endpoints are load
//! balancers over many nodes.
//!
//! - Each request is answered by one node, drawn at random (a load balancer's choice).
//! - Each node sees the chain up to its own head, which lags the producer's head by up to
//!   `max_node_lag_blocks` blocks (drawn again every block; a node's head never goes back). What
//!   a node answers (`block`, `status`, `query`, `tx`, and the state a submission is validated
//!   against) is what it has seen.
//! - Each node has its own pool. A transaction a node accepts is forwarded to the chunk producer
//!   (the chain's pool) when the next block is produced, like nearcore forwarding to the next
//!   chunk producers (chain/client/src/rpc_handler.rs `forward_tx`). The producer validates it
//!   again against its own state: a forwarded transaction whose nonce was used meanwhile is
//!   dropped silently (nearcore drops invalid transactions at chunk production).
//! - Fault knobs: a share of forwarded transactions is lost; a share arrives one block late (so
//!   transactions of one key can arrive out of nonce order and the lower nonce is then dropped
//!   as invalid); a share is held in its node's pool for `hold_blocks` blocks before it moves on
//!   (an earlier copy that lands late); a share of re-submissions of a transaction the front has
//!   already received is answered with a chosen transient error without being processed.

use std::collections::{HashMap, VecDeque};

use near_primitives::hash::CryptoHash;
use near_primitives::transaction::SignedTransaction;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::{Faults, InjectedError};

/// How many received transaction hashes the front remembers to recognise a re-submission.
const SEEN_CAPACITY: usize = 1_000_000;

/// A transaction on its way from a node's pool to the chunk producer.
struct Forward {
    tx: SignedTransaction,
    /// Forwarded when the block at this height is produced.
    ready_at: u64,
}

/// One simulated node.
struct NodeView {
    /// Height of this node's head.
    head: u64,
    /// A lag set by a test (`None`: drawn every block).
    forced_lag: Option<u64>,
    /// Transactions received, not forwarded yet.
    pool: Vec<Forward>,
}

/// A scripted answer for the next submissions of one transaction.
struct Scripted {
    remaining: u32,
    error: InjectedError,
}

/// The nodes behind the RPC URL.
pub struct Front {
    nodes: Vec<NodeView>,
    max_lag: u64,
    faults: Faults,
    rng: StdRng,
    seen: HashMap<CryptoHash, ()>,
    seen_order: VecDeque<CryptoHash>,
    scripted: HashMap<CryptoHash, Scripted>,
    holds: HashMap<CryptoHash, u64>,
}

impl Front {
    /// `count` nodes (at least one) at `head`, lagging up to `max_lag` blocks.
    pub fn new(count: usize, max_lag: u64, head: u64, seed: u64) -> Self {
        let nodes = (0..count.max(1))
            .map(|_| NodeView {
                head,
                forced_lag: None,
                pool: Vec::new(),
            })
            .collect();
        Self {
            nodes,
            max_lag,
            faults: Faults::default(),
            rng: StdRng::seed_from_u64(seed ^ 0x6e6f_6465),
            seen: HashMap::new(),
            seen_order: VecDeque::new(),
            scripted: HashMap::new(),
            holds: HashMap::new(),
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a front has at least one node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Replaces the front's fault knobs.
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    /// Makes `node` lag exactly `blocks` behind the producer (`None`: back to drawn lags). A node
    /// already further ahead stays where it is until the producer has moved on.
    pub fn set_lag(&mut self, node: usize, blocks: Option<u64>) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.forced_lag = blocks;
        }
    }

    /// The node that answers the next request.
    pub fn pick(&mut self) -> usize {
        if self.nodes.len() == 1 {
            0
        } else {
            self.rng.gen_range(0..self.nodes.len())
        }
    }

    /// Height of `node`'s head (the producer's head for an unknown node).
    pub fn head_of(&self, node: usize, producer_head: u64) -> u64 {
        self.nodes
            .get(node)
            .map_or(producer_head, |n| n.head.min(producer_head))
    }

    /// Scripts the answer to the next `count` submissions of `hash` (any node).
    pub fn script(&mut self, hash: CryptoHash, count: u32, error: InjectedError) {
        self.scripted.insert(
            hash,
            Scripted {
                remaining: count,
                error,
            },
        );
    }

    /// Holds the copies of `hash` that nodes receive for `blocks` blocks before forwarding them.
    pub fn hold(&mut self, hash: CryptoHash, blocks: u64) {
        self.holds.insert(hash, blocks);
    }

    /// Whether this submission is answered by an injected error instead of being processed:
    /// a scripted answer for this hash, or (for a re-submission) the `resend_reject_share` knob.
    pub fn injected(&mut self, hash: &CryptoHash) -> Option<InjectedError> {
        if let Some(s) = self.scripted.get_mut(hash) {
            if s.remaining > 0 {
                s.remaining -= 1;
                let error = s.error;
                if s.remaining == 0 {
                    self.scripted.remove(hash);
                }
                return Some(error);
            }
        }
        let share = self.faults.resend_reject_share;
        if share > 0.0 && self.seen.contains_key(hash) && self.rng.gen::<f64>() < share {
            return Some(self.faults.resend_reject_error);
        }
        None
    }

    /// Puts a transaction that `node` accepted into its pool (a copy already there is a
    /// duplicate and ignored, as nearcore's pool does).
    pub fn receive(&mut self, node: usize, tx: SignedTransaction, producer_head: u64) {
        let hash = tx.get_hash();
        self.remember(hash);
        let Some(n) = self.nodes.get(node) else {
            return;
        };
        if n.pool.iter().any(|f| f.tx.get_hash() == hash) {
            return;
        }
        let mut delay = 0;
        if let Some(blocks) = self.holds.remove(&hash) {
            delay = blocks;
        } else if self.faults.hold_share > 0.0 && self.rng.gen::<f64>() < self.faults.hold_share {
            delay = self.faults.hold_blocks;
        } else if self.faults.forward_delay_share > 0.0
            && self.rng.gen::<f64>() < self.faults.forward_delay_share
        {
            delay = 1;
        }
        if let Some(n) = self.nodes.get_mut(node) {
            n.pool.push(Forward {
                tx,
                ready_at: producer_head + 1 + delay,
            });
        }
    }

    fn remember(&mut self, hash: CryptoHash) {
        if self.seen.insert(hash, ()).is_none() {
            self.seen_order.push_back(hash);
            if self.seen_order.len() > SEEN_CAPACITY {
                if let Some(old) = self.seen_order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }

    /// The producer is about to produce block `height`: every node hands over what is due (minus
    /// the transactions lost in forwarding), in the order nodes received them.
    pub fn forward(&mut self, height: u64) -> Vec<SignedTransaction> {
        let mut out = Vec::new();
        for node in &mut self.nodes {
            let pool = std::mem::take(&mut node.pool);
            for f in pool {
                if f.ready_at <= height {
                    out.push(f.tx);
                } else {
                    node.pool.push(f);
                }
            }
        }
        let drop = self.faults.forward_drop_share;
        if drop > 0.0 {
            out.retain(|tx| {
                let lost = self.rng.gen::<f64>() < drop;
                if lost {
                    tracing::debug!(tx = %tx.get_hash(), "transaction lost in forwarding");
                }
                !lost
            });
        }
        out
    }

    /// A block at `head` was produced: every node's head moves to within its lag of it.
    pub fn advance(&mut self, head: u64) {
        for node in &mut self.nodes {
            let lag = match node.forced_lag {
                Some(l) => l,
                None if self.max_lag == 0 => 0,
                None => self.rng.gen_range(0..=self.max_lag),
            };
            let target = head.saturating_sub(lag);
            // A forced lag puts the node exactly there (a test's "node K blocks behind"); drawn
            // lags never move a node's head back.
            if node.forced_lag.is_some() || target > node.head {
                node.head = target;
            }
        }
    }

    /// Transactions waiting in node pools.
    pub fn pooled(&self) -> usize {
        self.nodes.iter().map(|n| n.pool.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use near_crypto::{InMemorySigner, KeyType};
    use near_primitives::transaction::{Transaction, TransactionV0};

    fn tx(nonce: u64) -> SignedTransaction {
        let signer = InMemorySigner::from_seed("a.devnet".parse().unwrap(), KeyType::ED25519, "a");
        let t = Transaction::V0(TransactionV0 {
            signer_id: "a.devnet".parse().unwrap(),
            public_key: signer.public_key(),
            nonce,
            receiver_id: "b.devnet".parse().unwrap(),
            block_hash: CryptoHash::default(),
            actions: vec![],
        });
        crate::validate::sign(t, &signer)
    }

    #[test]
    fn heads_lag_within_bounds_and_never_go_back() {
        let mut front = Front::new(4, 3, 1, 9);
        let mut last = [1; 4];
        for head in 2..200 {
            front.advance(head);
            for (i, l) in last.iter_mut().enumerate() {
                let h = front.head_of(i, head);
                assert!(
                    h >= *l && h <= head && h + 3 >= head,
                    "node {i} at {h}, head {head}"
                );
                *l = h;
            }
        }
        assert!(last.iter().any(|h| *h < 199) || (2..200).len() < 10);
    }

    #[test]
    fn a_forced_lag_holds_a_node_back() {
        let mut front = Front::new(2, 0, 1, 1);
        front.set_lag(1, Some(5));
        for head in 2..=20 {
            front.advance(head);
        }
        assert_eq!(front.head_of(0, 20), 20);
        assert_eq!(front.head_of(1, 20), 15);
    }

    #[test]
    fn forwarding_keeps_order_delays_and_holds() {
        let mut front = Front::new(1, 0, 1, 1);
        let (a, b, c) = (tx(1), tx(2), tx(3));
        front.hold(c.get_hash(), 3);
        front.receive(0, a.clone(), 1);
        front.receive(0, a.clone(), 1);
        front.receive(0, b.clone(), 1);
        front.receive(0, c.clone(), 1);
        let got: Vec<_> = front.forward(2).iter().map(|t| t.get_hash()).collect();
        assert_eq!(got, vec![a.get_hash(), b.get_hash()]);
        assert!(front.forward(4).is_empty());
        assert_eq!(front.forward(5).len(), 1);
    }

    #[test]
    fn scripted_answers_run_out() {
        let mut front = Front::new(1, 0, 1, 1);
        let h = tx(1).get_hash();
        front.script(h, 2, InjectedError::ShardCongested);
        assert_eq!(front.injected(&h), Some(InjectedError::ShardCongested));
        assert_eq!(front.injected(&h), Some(InjectedError::ShardCongested));
        assert_eq!(front.injected(&h), None);
    }
}
