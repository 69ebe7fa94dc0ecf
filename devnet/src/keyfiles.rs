//! near-cli key files for the genesis keys whose secrets are known (see `genesis` docs for
//! the file names). Files are created with mode 0600.

use std::path::{Path, PathBuf};

use near_crypto::{PublicKey, SecretKey};
use near_primitives::types::AccountId;
use serde::Serialize;

use crate::error::DevnetError;
use crate::genesis::{BuiltGenesis, KnownKey};

#[derive(Serialize)]
struct KeyFileJson<'a> {
    account_id: &'a AccountId,
    public_key: PublicKey,
    private_key: &'a SecretKey,
}

fn key_json(k: &KnownKey) -> KeyFileJson<'_> {
    KeyFileJson {
        account_id: &k.account_id,
        public_key: k.secret_key.public_key(),
        private_key: &k.secret_key,
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(text.as_bytes())
}

/// Writes the key files (see the module docs) and returns the treasury's key file paths
/// (`<treasury>-<i>.json`, or `<treasury>.json` when it has a single key).
pub fn write_key_files(
    dir: &Path,
    built: &BuiltGenesis,
    treasury: &AccountId,
) -> Result<Vec<PathBuf>, DevnetError> {
    let err = |source| DevnetError::KeyDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let users: std::collections::HashSet<&AccountId> = built.users.iter().collect();
    let mut treasury_files = Vec::new();
    let mut user_keys = Vec::new();
    for (account, keys) in &built.keys {
        if users.contains(account) {
            user_keys.extend(keys.iter().map(key_json));
            continue;
        }
        let to_text = |k: &KnownKey| serde_json::to_string_pretty(&key_json(k)).unwrap_or_default();
        if let Some(first) = keys.first() {
            let path = dir.join(format!("{account}.json"));
            write_private(&path, &to_text(first)).map_err(err)?;
            if account == treasury && keys.len() == 1 {
                treasury_files.push(path);
            }
        }
        if keys.len() > 1 {
            for (i, k) in keys.iter().enumerate() {
                let path = dir.join(format!("{account}-{i}.json"));
                write_private(&path, &to_text(k)).map_err(err)?;
                if account == treasury {
                    treasury_files.push(path);
                }
            }
        }
    }
    if !user_keys.is_empty() {
        let text = serde_json::to_string(&user_keys).unwrap_or_default();
        write_private(&dir.join("users.json"), &text).map_err(err)?;
    }
    Ok(treasury_files)
}
