//! Bearer tokens. Secrets are read once at start-up from the environment or a file, kept only as SHA-256
//! digests, and a presented token is compared against every digest in constant time. Neither the token nor
//! its digest ever appears in a log line, an error or a response.

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ApiConfig, Scope, TokenConfig, MIN_TOKEN_BYTES};
use crate::error::{ApiError, Error};

/// Longest `Authorization` header value considered (longer is rejected without hashing).
const MAX_AUTH_HEADER: usize = 1024;

struct Entry {
    name: String,
    scopes: Vec<Scope>,
    digest: [u8; 32],
}

/// The configured tokens, as digests.
pub struct Tokens {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| (&e.name, &e.scopes)))
            .finish()
    }
}

/// Who made an authorised request (the token's configured name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `[[api.tokens]] name`.
    pub name: String,
}

fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// The token of an `Authorization` value: `Bearer <token>` (scheme case-insensitive).
fn presented(bytes: &[u8]) -> Result<&[u8], ApiError> {
    if bytes.len() > MAX_AUTH_HEADER {
        return Err(ApiError::unauthorized("invalid bearer token"));
    }
    match bytes.iter().position(|b| *b == b' ') {
        Some(i) if bytes[..i].eq_ignore_ascii_case(b"bearer") => Ok(bytes[i + 1..].trim_ascii()),
        _ => Err(ApiError::unauthorized(
            "the Authorization header must be `Bearer <token>`",
        )),
    }
}

fn read_secret(i: usize, t: &TokenConfig) -> Result<String, Error> {
    let key = format!("api.tokens[{i}]");
    let raw = match (&t.token_env, &t.token_file) {
        (Some(var), None) => std::env::var(var).map_err(|_| {
            Error::Config(format!(
                "{key}.token_env: environment variable {var} is not set (or not valid UTF-8)"
            ))
        })?,
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "{key}.token_file: cannot read {}: {}",
                path.display(),
                e.kind()
            ))
        })?,
        _ => {
            return Err(Error::Config(format!(
                "{key}: set exactly one of token_env and token_file"
            )))
        }
    };
    let secret = raw.trim().to_string();
    if secret.len() < MIN_TOKEN_BYTES {
        return Err(Error::Config(format!(
            "{key}: the token of `{}` is shorter than {MIN_TOKEN_BYTES} bytes",
            t.name
        )));
    }
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Config(format!(
            "{key}: the token of `{}` must be printable ASCII without spaces",
            t.name
        )));
    }
    Ok(secret)
}

impl Tokens {
    /// Reads every configured secret. Fails naming the key when one is missing, unreadable or too short.
    pub fn load(cfg: &ApiConfig) -> Result<Self, Error> {
        let mut entries = Vec::with_capacity(cfg.tokens.len());
        for (i, t) in cfg.tokens.iter().enumerate() {
            let secret = read_secret(i, t)?;
            let d = digest(secret.as_bytes());
            if entries.iter().any(|e: &Entry| e.digest == d) {
                return Err(Error::Config(format!(
                    "api.tokens[{i}]: `{}` uses the same token as another entry",
                    t.name
                )));
            }
            entries.push(Entry {
                name: t.name.clone(),
                scopes: t.scopes.clone(),
                digest: d,
            });
        }
        Ok(Self { entries })
    }

    /// Number of configured tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no token is configured (then nothing that needs one can be done).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The index of the configured token the `Authorization: Bearer …` header presents, if any (no scope
    /// check): what the per-token rate limit is keyed on. Constant time over the configured tokens.
    pub fn identify(&self, headers: &HeaderMap) -> Option<usize> {
        let value = headers.get(header::AUTHORIZATION)?;
        self.find(presented(value.as_bytes()).ok()?)
    }

    fn find(&self, presented: &[u8]) -> Option<usize> {
        let d = digest(presented);
        // Compare against every entry, without stopping at the first match.
        let mut found = None;
        for (i, e) in self.entries.iter().enumerate() {
            if bool::from(e.digest.ct_eq(&d)) {
                found = Some(i);
            }
        }
        found
    }

    /// Checks the `Authorization: Bearer …` header for `scope`: 401 without a token or with an unknown one,
    /// 403 for a known token lacking the scope.
    pub fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<Principal, ApiError> {
        self.authorize_any(headers, &[scope])
    }

    /// [`Tokens::authorize`] for a token holding any of `scopes` (the first is named in messages).
    pub fn authorize_any(
        &self,
        headers: &HeaderMap,
        scopes: &[Scope],
    ) -> Result<Principal, ApiError> {
        let scope = scopes.first().copied().unwrap_or(Scope::Admin);
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(format!(
                "missing bearer token: send `Authorization: Bearer <token>` with a token that has the `{scope}` scope"
            )));
        };
        let token = presented(value.as_bytes())?;
        let entry = self
            .find(token)
            .and_then(|i| self.entries.get(i))
            .ok_or_else(|| ApiError::unauthorized("invalid bearer token"))?;
        if !scopes.iter().any(|s| entry.scopes.contains(s)) {
            tracing::info!(token = %entry.name, %scope, "token lacks the scope");
            let wanted: Vec<String> = scopes.iter().map(|s| format!("`{s}`")).collect();
            return Err(ApiError::forbidden(format!(
                "token `{}` does not have the {} scope",
                entry.name,
                wanted.join(" or ")
            )));
        }
        Ok(Principal {
            name: entry.name.clone(),
        })
    }
}
