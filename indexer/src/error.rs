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
    /// Invalid configuration.
    #[error("{0}")]
    Config(String),
}
