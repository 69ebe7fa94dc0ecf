//! Run-time fault injection for the JSON-RPC port: a seeded RNG decides, per call, whether the
//! answer is an HTTP 500 (call not processed) or an HTTP 408 timeout (call processed, answer
//! lost). Dropping transactions is done by the chain at chunk production (same knob struct).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::Faults;

/// What to do with one RPC call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcFault {
    /// Answer normally.
    None,
    /// Process the call, then answer 408 `TIMEOUT_ERROR`.
    Timeout,
    /// Answer 500 without processing.
    ServerError,
}

/// The knobs and their RNG.
pub struct FaultState {
    faults: Faults,
    rng: StdRng,
}

impl FaultState {
    /// Knobs with an RNG seeded from `faults.seed`.
    pub fn new(faults: Faults) -> Self {
        let rng = StdRng::seed_from_u64(faults.seed);
        Self { faults, rng }
    }

    /// The knobs in force.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Replaces the knobs; the RNG is re-seeded when the seed changes.
    pub fn set(&mut self, faults: Faults) {
        if faults.seed != self.faults.seed {
            self.rng = StdRng::seed_from_u64(faults.seed);
        }
        self.faults = faults;
    }

    /// Draws the fault for one RPC call.
    pub fn draw_rpc(&mut self) -> RpcFault {
        let (t, e) = (self.faults.rpc_timeout_share, self.faults.rpc_5xx_share);
        if t <= 0.0 && e <= 0.0 {
            return RpcFault::None;
        }
        let x: f64 = self.rng.gen();
        if x < e {
            RpcFault::ServerError
        } else if x < e + t {
            RpcFault::Timeout
        } else {
            RpcFault::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_respected_and_reproducible() {
        let faults = Faults {
            rpc_timeout_share: 0.25,
            rpc_5xx_share: 0.25,
            seed: 3,
            ..Faults::default()
        };
        let draw = |n| {
            let mut s = FaultState::new(faults.clone());
            (0..n).map(|_| s.draw_rpc()).collect::<Vec<_>>()
        };
        let a = draw(4000);
        assert_eq!(a, draw(4000));
        let count = |f| a.iter().filter(|x| **x == f).count();
        assert!((800..1200).contains(&count(RpcFault::Timeout)));
        assert!((800..1200).contains(&count(RpcFault::ServerError)));
        assert_eq!(
            FaultState::new(Faults::default()).draw_rpc(),
            RpcFault::None
        );
    }
}
