//! The store's error type. Callers map it: `Conflict`/`IllegalTransition` to 409/422, `PoolTimeout` to 503,
//! everything else to an opaque 500 whose cause is logged, never sent.

use crate::types::{ClaimId, ClaimStatus, TxStatus};

/// Everything a store call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Could not open a connection (bad URL, server down, auth). The message never holds the password.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// No pooled connection became free within the wait timeout.
    #[error("database pool exhausted: no connection free within the wait timeout")]
    PoolTimeout,
    /// Any other pool failure.
    #[error("database pool: {0}")]
    Pool(String),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// Running or reverting migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A claim transition the lifecycle forbids (e.g. `confirmed → pending`).
    #[error("illegal claim transition {from} → {to}")]
    IllegalTransition {
        /// current state
        from: ClaimStatus,
        /// requested state
        to: ClaimStatus,
    },
    /// Some claims were not in the state the caller expected; nothing was changed.
    #[error("claims {ids:?} are not {expected}; nothing changed")]
    StateMismatch {
        /// the claims that were not in `expected`
        ids: Vec<ClaimId>,
        /// the state the caller expected them in
        expected: ClaimStatus,
    },
    /// A transaction transition the lifecycle forbids.
    #[error("illegal transaction transition {from} → {to} for {hash}")]
    IllegalTxTransition {
        /// transaction hash
        hash: String,
        /// current state
        from: TxStatus,
        /// requested state
        to: TxStatus,
    },
    /// A row the caller named does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The cursor would move backwards or stand still.
    #[error("cursor `{stream}` is at {current}; cannot move it to {requested}")]
    CursorRegression {
        /// stream name
        stream: String,
        /// the stored height
        current: i64,
        /// the height asked for
        requested: i64,
    },
    /// The caller no longer holds the lease on this key (expired or taken over), or the nonce did not move
    /// forward: it must not sign with the key.
    #[error("lease on key {public_key} is not held by {owner} (expired or taken), or the nonce did not advance")]
    LeaseLost {
        /// the key
        public_key: String,
        /// the would-be holder
        owner: String,
    },
    /// A stored value that cannot be what it claims (e.g. a negative height).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// A value the caller gave that cannot be stored (e.g. a height beyond `BIGINT`).
    #[error("invalid value: {0}")]
    Invalid(String),
}

impl StoreError {
    /// Whether the error is a unique-constraint violation (a duplicate key).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            StoreError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
