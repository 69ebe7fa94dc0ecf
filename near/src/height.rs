//! Block heights as their own type, so a height is never confused with a nonce, a count of blocks or a
//! database id in a signature. The store keeps heights as plain integers (its rows); this type starts where a
//! worker reads one.

use std::fmt;

/// The height of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BlockHeight(pub u64);

impl BlockHeight {
    /// The height `blocks` later (saturating).
    pub fn plus(self, blocks: u64) -> Self {
        Self(self.0.saturating_add(blocks))
    }
}

impl fmt::Display for BlockHeight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for BlockHeight {
    fn from(h: u64) -> Self {
        Self(h)
    }
}
