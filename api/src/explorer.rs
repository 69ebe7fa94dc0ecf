//! Transaction links on the dashboard: `api.explorer_tx_url`, its check, and the default per network.

/// The placeholder of [`ApiConfig::explorer_tx_url`](crate::ApiConfig::explorer_tx_url).
pub const HASH_PLACEHOLDER: &str = "{hash}";

/// The explorer link of a network without `api.explorer_tx_url`: nearblocks for mainnet and testnet, none
/// for any other chain (a devnet or localnet has no public explorer).
pub fn default_explorer_tx_url(chain_id: &str) -> Option<&'static str> {
    match chain_id {
        "mainnet" => Some("https://nearblocks.io/txns/{hash}"),
        "testnet" => Some("https://testnet.nearblocks.io/txns/{hash}"),
        _ => None,
    }
}

/// An explorer pattern is `""` (no links) or an http(s) URL with a host and `{hash}` once, with nothing a
/// browser would read as another URL or attribute (no whitespace, quotes, angle brackets or backslashes).
pub(crate) fn check_explorer_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Ok(());
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("`{url}` is not an http:// or https:// URL"))?;
    if url.matches(HASH_PLACEHOLDER).count() != 1 {
        return Err(format!(
            "`{url}` must hold {HASH_PLACEHOLDER} exactly once, where the transaction hash goes"
        ));
    }
    if url.len() > 512
        || url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'<>\\`".contains(c))
    {
        return Err(format!(
            "`{url}` has a character a URL may not hold (whitespace, quotes, <, >, \\), or is longer than 512"
        ));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(HASH_PLACEHOLDER) || host.contains('@') {
        return Err(format!(
            "`{url}` needs a host before the path (and no user name)"
        ));
    }
    Ok(())
}
