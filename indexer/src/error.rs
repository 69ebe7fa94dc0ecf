//! The indexer's errors.

/// Everything the indexer can fail with.
#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    /// The block source could not be set up, or the stream stopped.
    #[error("block source: {0}")]
    Source(String),
    /// A database call failed.
    #[error(transparent)]
    Store(#[from] payouts_store::StoreError),
    /// Blocks that do not chain: the message names the broken link (heights and hashes).
    #[error("chain broken: {0}")]
    Chain(String),
    /// Invalid configuration.
    #[error("{0}")]
    Config(String),
}
