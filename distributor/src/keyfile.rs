//! Treasury keys from near-cli key files (`{"account_id", "public_key", "private_key"}`; `secret_key` is
//! accepted too). Secrets stay inside [`TreasuryKey`], whose `Debug` never shows them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use near_crypto::{InMemorySigner, PublicKey, SecretKey, Signer};
use near_primitives::types::AccountId;
use serde::Deserialize;

/// Why a key file cannot be used. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Unreadable file.
    #[error("key file {path}: {source}")]
    Read {
        /// the file
        path: PathBuf,
        /// why
        source: std::io::Error,
    },
    /// Not near-cli JSON, or a field is invalid.
    #[error("key file {path}: {message}")]
    Invalid {
        /// the file
        path: PathBuf,
        /// what is wrong (never the key itself)
        message: String,
    },
}

#[derive(Deserialize)]
struct KeyFileJson {
    account_id: String,
    public_key: String,
    #[serde(alias = "secret_key")]
    private_key: String,
}

/// One full-access key of the treasury: one nonce lane.
#[derive(Clone)]
pub struct TreasuryKey {
    /// The treasury account.
    pub account_id: AccountId,
    /// The key's public half.
    pub public_key: PublicKey,
    signer: Signer,
}

impl fmt::Debug for TreasuryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreasuryKey")
            .field("account_id", &self.account_id)
            .field("public_key", &self.public_key.to_string())
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl TreasuryKey {
    /// Reads one key file.
    pub fn from_file(path: &Path) -> Result<Self, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
            path: path.into(),
            source,
        })?;
        Self::from_json(&text).map_err(|message| KeyFileError::Invalid {
            path: path.into(),
            message,
        })
    }

    /// Parses near-cli key-file JSON.
    pub fn from_json(text: &str) -> Result<Self, String> {
        // serde's message could quote the input (the secret): give a fixed one.
        let json: KeyFileJson = serde_json::from_str(text).map_err(|_| {
            "not a near-cli key file (account_id, public_key, private_key)".to_string()
        })?;
        let account_id = AccountId::from_str(&json.account_id)
            .map_err(|e| format!("account_id is not valid: {e}"))?;
        let public_key = PublicKey::from_str(&json.public_key)
            .map_err(|_| "public_key is not a valid key".to_string())?;
        let secret = SecretKey::from_str(&json.private_key)
            .map_err(|_| "private_key is not a valid key".to_string())?;
        if secret.public_key() != public_key {
            return Err("private_key does not belong to public_key".into());
        }
        let signer = InMemorySigner::from_secret_key(account_id.clone(), secret);
        Ok(Self {
            account_id,
            public_key,
            signer,
        })
    }

    /// Signs `data` (a transaction hash).
    pub fn sign(&self, data: &[u8]) -> near_crypto::Signature {
        self.signer.sign(data)
    }
}

/// Loads every key the configuration names: `key_files`, then the JSON array in the `keys_env` variable. All
/// keys must belong to one account; duplicates are dropped; at least one key is required.
pub fn load_keys(
    files: &[PathBuf],
    keys_env: Option<&str>,
) -> Result<Vec<TreasuryKey>, KeyFileError> {
    let mut keys = Vec::new();
    for path in files {
        keys.push(TreasuryKey::from_file(path)?);
    }
    if let Some(var) = keys_env {
        let source = PathBuf::from(format!("${var}"));
        let invalid = |message: String| KeyFileError::Invalid {
            path: source.clone(),
            message,
        };
        let text = std::env::var(var).map_err(|_| invalid("is not set".into()))?;
        let items: Vec<serde_json::Value> = serde_json::from_str(&text)
            .map_err(|_| invalid("is not a JSON array of near-cli key objects".into()))?;
        for (i, item) in items.iter().enumerate() {
            keys.push(
                TreasuryKey::from_json(&item.to_string())
                    .map_err(|m| invalid(format!("item {i}: {m}")))?,
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(k.public_key.clone()));
    let first = keys.first().ok_or_else(|| KeyFileError::Invalid {
        path: PathBuf::from("distributor.key_files"),
        message: "no treasury key configured (key_files or keys_env)".into(),
    })?;
    if let Some(other) = keys.iter().find(|k| k.account_id != first.account_id) {
        return Err(KeyFileError::Invalid {
            path: PathBuf::from("distributor.key_files"),
            message: format!(
                "keys of two accounts ({} and {}): one treasury per process",
                first.account_id, other.account_id
            ),
        });
    }
    Ok(keys)
}

/// The treasury account the configured keys belong to, reading only each key file's `account_id` (the
/// private key is not parsed or kept): for processes that show the treasury but never sign (the API). The
/// first of `key_files`, else the first item of the `keys_env` array; `None` when no key is configured.
pub fn treasury_account(
    files: &[PathBuf],
    keys_env: Option<&str>,
) -> Result<Option<AccountId>, KeyFileError> {
    #[derive(Deserialize)]
    struct AccountOnly {
        account_id: String,
    }
    let (text, source) = if let Some(path) = files.first() {
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
            path: path.clone(),
            source,
        })?;
        (text, path.clone())
    } else if let Some(var) = keys_env {
        let source = PathBuf::from(format!("${var}"));
        let Ok(text) = std::env::var(var) else {
            return Ok(None);
        };
        let items: Vec<serde_json::Value> =
            serde_json::from_str(&text).map_err(|_| KeyFileError::Invalid {
                path: source.clone(),
                message: "is not a JSON array of near-cli key objects".into(),
            })?;
        match items.first() {
            Some(item) => (item.to_string(), source),
            None => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    let invalid = |message: String| KeyFileError::Invalid {
        path: source.clone(),
        message,
    };
    let json: AccountOnly = serde_json::from_str(&text)
        .map_err(|_| invalid("not a near-cli key file (account_id missing)".into()))?;
    AccountId::from_str(&json.account_id)
        .map(Some)
        .map_err(|e| invalid(format!("account_id is not valid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use near_crypto::KeyType;

    fn key_json(account: &str, secret: &SecretKey, public: &PublicKey) -> String {
        serde_json::json!({"account_id": account, "public_key": public.to_string(), "private_key": secret.to_string()})
            .to_string()
    }

    #[test]
    fn reads_near_cli_files_and_never_shows_the_secret() {
        let secret = SecretKey::from_seed(KeyType::ED25519, "treasury");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        std::fs::write(
            &path,
            key_json("treasury.devnet", &secret, &secret.public_key()),
        )
        .unwrap();
        let key = TreasuryKey::from_file(&path).unwrap();
        assert_eq!(key.account_id.as_str(), "treasury.devnet");
        let shown = format!("{key:?}");
        assert!(
            !shown.contains(&secret.to_string()) && shown.contains("<redacted>"),
            "{shown}"
        );
        let sig = key.sign(b"hash");
        assert!(sig.verify(b"hash", &key.public_key));
    }

    #[test]
    fn rejects_mismatched_or_malformed_keys_without_echoing_them() {
        let a = SecretKey::from_seed(KeyType::ED25519, "a");
        let b = SecretKey::from_seed(KeyType::ED25519, "b");
        let err = TreasuryKey::from_json(&key_json("t.devnet", &a, &b.public_key())).unwrap_err();
        assert!(err.contains("does not belong"), "{err}");
        let broken =
            key_json("t.devnet", &a, &a.public_key()).replace("\"private_key\"", "\"privat\"");
        let err = TreasuryKey::from_json(&broken).unwrap_err();
        assert!(!err.contains(&a.to_string()), "{err}");
        let err = TreasuryKey::from_json(&key_json("NOT VALID", &a, &a.public_key())).unwrap_err();
        assert!(err.contains("account_id"), "{err}");
        let missing = TreasuryKey::from_file(Path::new("/nonexistent/key.json")).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/key.json"));
    }
}
