//! Errors of the devnet as a component (start-up, genesis, I/O). Protocol-level rejections are
//! not errors of this type: they are nearcore's own `InvalidTxError` / `ActionError` values,
//! returned to clients in nearcore's JSON shapes.

use std::path::PathBuf;

/// Why the devnet could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// The genesis file could not be read.
    #[error("cannot read genesis file {path}: {source}")]
    GenesisRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The genesis file is not valid TOML for [`crate::Genesis`].
    #[error("invalid genesis file {path}: {source}")]
    GenesisParse {
        /// The file.
        path: PathBuf,
        /// The TOML error.
        source: toml::de::Error,
    },
    /// The genesis is inconsistent (duplicate account, bad key, …).
    #[error("invalid genesis: {0}")]
    GenesisInvalid(String),
    /// Key files could not be written.
    #[error("cannot write key files into {path}: {source}")]
    KeyDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP server stopped with an error.
    #[error("http server failed: {0}")]
    Serve(std::io::Error),
}
