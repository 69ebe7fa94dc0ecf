//! Genesis: the initial accounts, keys, balances and token ledger, from a TOML file or the
//! built-in default, and the near-cli key files written for them.
//!
//! Built-in default (`Genesis::default()`):
//! - `treasury.devnet`: 1,000,000 NEAR, 8 full-access keys, holds the whole token supply;
//! - `token.devnet`: the NEP-141 token (24 decimals, supply 10^12 tokens, `ft_transfer` burns
//!   1.9 Tgas), 1 full-access key;
//! - `heavy.devnet`: a second NEP-141 token whose `ft_transfer` burns 4.5 Tgas (a token with more
//!   storage work, such as one with per-holder accounting: 2–5 Tgas is typical on mainnet), so
//!   a batch attaching 3 Tgas per transfer fails as a whole with "Exceeded the prepaid gas.";
//!   same holders and registrations as `token.devnet`;
//! - `claims.devnet`: the claims contract, 1 full-access key;
//! - `user-0.devnet` … `user-999.devnet`: 100 NEAR and 1 full-access key each; users with an
//!   even N are registered with the token (balance 0), odd ones are not.
//!
//! Keys are derived deterministically from the account id and key index ([`derived_secret_key`]),
//! so every run, test and benchmark sees the same keys. Key files (near-cli JSON: `account_id`,
//! `public_key`, `private_key`) are written into the key directory: `<account>.json` holds key 0
//! of each account with derived keys, `<account>-<i>.json` every key of accounts holding more than
//! one (`treasury.devnet-0.json` … `treasury.devnet-7.json`), and `users.json` an array with the
//! key of every generated user.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use near_crypto::{KeyType, PublicKey, SecretKey};
use near_primitives::account::{AccessKey, AccessKeyPermission, FunctionCallPermission};
use near_primitives::hash::hash;
use near_primitives::types::{AccountId, Balance};
use serde::Deserialize;

use crate::error::DevnetError;
use crate::state::{Account, ContractKind, FtLedger, FtMetadata, State};

const NEAR: u128 = 1_000_000_000_000_000_000_000_000;

/// A u128 amount written as a decimal string in TOML/JSON (TOML integers stop at i64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct U128(pub u128);

impl<'de> Deserialize<'de> for U128 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(U128).map_err(serde::de::Error::custom)
    }
}

/// The genesis file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Chain id reported by `status`.
    #[serde(default = "default_chain_id")]
    pub chain_id: String,
    /// Height of the genesis block.
    #[serde(default = "default_genesis_height")]
    pub genesis_height: u64,
    /// Gas price of the genesis block, yoctoNEAR per gas (then it moves with how full blocks
    /// are, never below `min_gas_price` nor above `max_gas_price`).
    #[serde(default = "default_gas_price")]
    pub gas_price: U128,
    /// Lowest gas price (mainnet's: 10^8 yoctoNEAR per gas).
    #[serde(default = "default_gas_price")]
    pub min_gas_price: U128,
    /// Highest gas price (mainnet's: 10^22 yoctoNEAR per gas).
    #[serde(default = "default_max_gas_price")]
    pub max_gas_price: U128,
    /// The account whose keys are "the treasury keys".
    pub treasury: AccountId,
    /// Explicit accounts.
    #[serde(default)]
    pub accounts: Vec<GenesisAccount>,
    /// Generated user accounts.
    #[serde(default)]
    pub users: Option<UsersGenesis>,
    /// The token contract's ledger.
    pub token: TokenGenesis,
    /// Further token contracts (`[[tokens]]`), each with its own ledger.
    #[serde(default)]
    pub tokens: Vec<TokenGenesis>,
}

/// One explicit account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    /// Account id.
    pub account_id: AccountId,
    /// NEAR balance, yoctoNEAR.
    pub amount: U128,
    /// Number of full-access keys derived from the account id (key files are written for them).
    #[serde(default)]
    pub key_count: u32,
    /// Extra full-access public keys (no key file: the secret is not known).
    #[serde(default)]
    pub public_keys: Vec<PublicKey>,
    /// Function-call keys, derived from the account id with indexes after the full-access ones.
    #[serde(default)]
    pub function_call_keys: Vec<FunctionCallKeyGenesis>,
    /// Native contract run by the account.
    #[serde(default)]
    pub contract: Option<ContractKind>,
}

/// A function-call access key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionCallKeyGenesis {
    /// Allowed receiver.
    pub receiver_id: AccountId,
    /// Allowed methods (empty = any).
    #[serde(default)]
    pub method_names: Vec<String>,
    /// Allowance in yoctoNEAR (`None` = unlimited).
    #[serde(default)]
    pub allowance: Option<U128>,
}

/// Generated users `{prefix}{N}{suffix}`, N = 0..count.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersGenesis {
    /// How many.
    pub count: u32,
    /// Account id prefix.
    #[serde(default = "default_user_prefix")]
    pub prefix: String,
    /// Account id suffix.
    #[serde(default = "default_user_suffix")]
    pub suffix: String,
    /// NEAR balance of each user.
    pub amount: U128,
    /// Register users with an even N with the token.
    #[serde(default)]
    pub register_even: bool,
}

/// The token ledger at genesis.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenGenesis {
    /// Token contract account (must be an explicit account with `contract = "ft"`).
    pub account_id: AccountId,
    /// Holder of the whole supply.
    pub owner_id: AccountId,
    /// Total supply, base units.
    pub total_supply: U128,
    /// Decimals.
    #[serde(default = "default_decimals")]
    pub decimals: u8,
    /// Name.
    #[serde(default = "default_token_name")]
    pub name: String,
    /// Symbol.
    #[serde(default = "default_token_symbol")]
    pub symbol: String,
    /// Further accounts registered with balance 0.
    #[serde(default)]
    pub registered: Vec<AccountId>,
    /// Gas one `ft_transfer` burns on top of the action fees (default 1.9 Tgas).
    #[serde(default = "default_ft_transfer_gas")]
    pub ft_transfer_gas: u64,
}

fn default_chain_id() -> String {
    "devnet".into()
}
fn default_genesis_height() -> u64 {
    1
}
fn default_gas_price() -> U128 {
    U128(100_000_000)
}
fn default_max_gas_price() -> U128 {
    U128(10_000_000_000_000_000_000_000)
}
fn default_ft_transfer_gas() -> u64 {
    crate::fees::DEFAULT_FT_TRANSFER_GAS
}
fn default_user_prefix() -> String {
    "user-".into()
}
fn default_user_suffix() -> String {
    ".devnet".into()
}
fn default_decimals() -> u8 {
    24
}
fn default_token_name() -> String {
    "Devnet Token".into()
}
fn default_token_symbol() -> String {
    "DEVT".into()
}

/// A valid account id literal (checked by `AccountIdRef::new_or_panic` in a const context).
macro_rules! id {
    ($s:literal) => {{
        const ID: &near_primitives::account::id::AccountIdRef =
            near_primitives::account::id::AccountIdRef::new_or_panic($s);
        ID.to_owned()
    }};
}

impl Default for Genesis {
    fn default() -> Self {
        let account = |account_id: AccountId, amount: u128, keys: u32, contract| GenesisAccount {
            account_id,
            amount: U128(amount),
            key_count: keys,
            public_keys: vec![],
            function_call_keys: vec![],
            contract,
        };
        Self {
            chain_id: default_chain_id(),
            genesis_height: default_genesis_height(),
            gas_price: default_gas_price(),
            min_gas_price: default_gas_price(),
            max_gas_price: default_max_gas_price(),
            treasury: id!("treasury.devnet"),
            accounts: vec![
                account(id!("treasury.devnet"), 1_000_000 * NEAR, 8, None),
                account(id!("token.devnet"), 100 * NEAR, 1, Some(ContractKind::Ft)),
                account(id!("heavy.devnet"), 100 * NEAR, 1, Some(ContractKind::Ft)),
                account(
                    id!("claims.devnet"),
                    100 * NEAR,
                    1,
                    Some(ContractKind::Claims),
                ),
            ],
            users: Some(UsersGenesis {
                count: 1000,
                prefix: default_user_prefix(),
                suffix: default_user_suffix(),
                amount: U128(100 * NEAR),
                register_even: true,
            }),
            token: TokenGenesis {
                account_id: id!("token.devnet"),
                owner_id: id!("treasury.devnet"),
                total_supply: U128(1_000_000_000_000 * NEAR),
                decimals: default_decimals(),
                name: default_token_name(),
                symbol: default_token_symbol(),
                registered: vec![],
                ft_transfer_gas: default_ft_transfer_gas(),
            },
            tokens: vec![TokenGenesis {
                account_id: id!("heavy.devnet"),
                owner_id: id!("treasury.devnet"),
                total_supply: U128(1_000_000_000_000 * NEAR),
                decimals: default_decimals(),
                name: "Heavy Devnet Token".into(),
                symbol: "HEVT".into(),
                registered: vec![],
                ft_transfer_gas: 4_500_000_000_000,
            }],
        }
    }
}

/// The secret key number `index` of `account`, derived deterministically.
pub fn derived_secret_key(account: &AccountId, index: u32) -> SecretKey {
    // near-crypto uses the first 32 bytes of the seed as the ed25519 secret: hash first so long
    // account ids cannot collide.
    let seed = hash(format!("payouts-devnet:{account}#{index}").as_bytes()).to_string();
    SecretKey::from_seed(KeyType::ED25519, &seed)
}

/// A key whose secret is known (written to a key file).
#[derive(Debug, Clone)]
pub struct KnownKey {
    /// Owner.
    pub account_id: AccountId,
    /// Secret key.
    pub secret_key: SecretKey,
}

/// The state built from a genesis, plus the keys whose secrets are known.
pub struct BuiltGenesis {
    /// Initial state.
    pub state: State,
    /// Derived keys per account (full-access first, then function-call keys), in index order.
    pub keys: BTreeMap<AccountId, Vec<KnownKey>>,
    /// Generated user account ids, in N order.
    pub users: Vec<AccountId>,
}

impl Genesis {
    /// Reads a genesis TOML file.
    pub fn from_file(path: &Path) -> Result<Self, DevnetError> {
        let text = std::fs::read_to_string(path).map_err(|source| DevnetError::GenesisRead {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| DevnetError::GenesisParse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Builds the initial state.
    pub fn build(&self) -> Result<BuiltGenesis, DevnetError> {
        let mut accounts: HashMap<AccountId, Account> = HashMap::new();
        let mut keys: BTreeMap<AccountId, Vec<KnownKey>> = BTreeMap::new();
        let invalid = |msg: String| DevnetError::GenesisInvalid(msg);
        for ga in &self.accounts {
            let mut acc = Account {
                amount: ga.amount.0,
                storage_usage: 182,
                contract: ga.contract,
                keys: BTreeMap::new(),
            };
            let mut known = Vec::new();
            for i in 0..ga.key_count {
                let sk = derived_secret_key(&ga.account_id, i);
                acc.keys.insert(sk.public_key(), AccessKey::full_access());
                known.push(KnownKey {
                    account_id: ga.account_id.clone(),
                    secret_key: sk,
                });
            }
            for pk in &ga.public_keys {
                acc.keys.insert(pk.clone(), AccessKey::full_access());
            }
            for (j, fc) in ga.function_call_keys.iter().enumerate() {
                let index = ga
                    .key_count
                    .saturating_add(u32::try_from(j).unwrap_or(u32::MAX));
                let sk = derived_secret_key(&ga.account_id, index);
                let permission = AccessKeyPermission::FunctionCall(FunctionCallPermission {
                    allowance: fc.allowance.map(|a| Balance::from_yoctonear(a.0)),
                    receiver_id: fc.receiver_id.to_string(),
                    method_names: fc.method_names.clone(),
                });
                acc.keys.insert(
                    sk.public_key(),
                    AccessKey {
                        nonce: 0,
                        permission,
                    },
                );
                known.push(KnownKey {
                    account_id: ga.account_id.clone(),
                    secret_key: sk,
                });
            }
            acc.storage_usage += 82 * acc.keys.len() as u64;
            if accounts.insert(ga.account_id.clone(), acc).is_some() {
                return Err(invalid(format!("duplicate account {}", ga.account_id)));
            }
            if !known.is_empty() {
                keys.insert(ga.account_id.clone(), known);
            }
        }
        let mut users = Vec::new();
        if let Some(u) = &self.users {
            for n in 0..u.count {
                let name = format!("{}{n}{}", u.prefix, u.suffix);
                let account_id: AccountId = name
                    .parse()
                    .map_err(|e| invalid(format!("bad user id {name}: {e}")))?;
                let sk = derived_secret_key(&account_id, 0);
                let acc = Account {
                    amount: u.amount.0,
                    storage_usage: 264,
                    contract: None,
                    keys: BTreeMap::from([(sk.public_key(), AccessKey::full_access())]),
                };
                if accounts.insert(account_id.clone(), acc).is_some() {
                    return Err(invalid(format!("duplicate account {account_id}")));
                }
                keys.insert(
                    account_id.clone(),
                    vec![KnownKey {
                        account_id: account_id.clone(),
                        secret_key: sk,
                    }],
                );
                users.push(account_id);
            }
        }
        if !accounts.contains_key(&self.treasury) {
            return Err(invalid(format!(
                "treasury {} does not exist",
                self.treasury
            )));
        }
        let mut ledgers = HashMap::new();
        for t in std::iter::once(&self.token).chain(&self.tokens) {
            match accounts.get(&t.account_id) {
                Some(acc) if acc.contract == Some(ContractKind::Ft) => {}
                _ => {
                    return Err(invalid(format!(
                        "token {} must be an ft account",
                        t.account_id
                    )))
                }
            }
            if !accounts.contains_key(&t.owner_id) {
                return Err(invalid(format!(
                    "token owner {} does not exist",
                    t.owner_id
                )));
            }
            let mut balances: HashMap<AccountId, u128> = HashMap::new();
            for r in &t.registered {
                balances.insert(r.clone(), 0);
            }
            if self.users.as_ref().is_some_and(|u| u.register_even) {
                for user in users.iter().step_by(2) {
                    balances.insert(user.clone(), 0);
                }
            }
            balances.insert(t.owner_id.clone(), t.total_supply.0);
            let metadata = FtMetadata {
                spec: "ft-1.0.0".into(),
                name: t.name.clone(),
                symbol: t.symbol.clone(),
                icon: None,
                reference: None,
                reference_hash: None,
                decimals: t.decimals,
            };
            let ledger = FtLedger {
                balances,
                total_supply: t.total_supply.0,
                metadata,
                ft_transfer_gas: t.ft_transfer_gas,
            };
            if ledgers.insert(t.account_id.clone(), ledger).is_some() {
                return Err(invalid(format!("duplicate token {}", t.account_id)));
            }
        }
        let state = State::new(accounts, ledgers);
        Ok(BuiltGenesis { state, keys, users })
    }
}

#[cfg(test)]
mod tests;
