//! The JSON shapes of requests and answers. Money is always a decimal string (u128 end to end), never a
//! JSON number. Claims and manual sends here; `/status`, `/health` and `/ready` in [`status`]; replays,
//! incidents and webhooks in [`ops`].

mod ops;
mod status;

pub use ops::*;
pub use status::*;

use chrono::{DateTime, Utc};
use payouts_store::claims::Claim;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /send-ft` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendFtRequest {
    /// NEAR account receiving the tokens, e.g. `alice.near`.
    #[schema(example = "alice.devnet")]
    #[serde(deserialize_with = "strings::receiver_id")]
    pub receiver_id: String,
    /// Amount in the token's smallest unit: a decimal string of digits only, more than 0, at most the
    /// configured maximum.
    #[schema(example = "1000000000000000000000000", pattern = "^[0-9]{1,39}$")]
    #[serde(deserialize_with = "strings::amount")]
    pub amount: String,
    /// NEP-141 contract; one of the configured allowlist. Omitted: the first of the allowlist.
    #[serde(default, deserialize_with = "strings::token")]
    #[schema(example = "token.devnet")]
    pub token: Option<String>,
    /// Stored with the claim and appended to the `ft_transfer` memo. Printable text, bounded length.
    #[serde(default, deserialize_with = "strings::memo")]
    pub memo: Option<String>,
    /// `false`: pay this claim with an `ft_transfer` of its own, never merged with other claims of the same
    /// receiver (`distributor.coalesce`). Omitted: `true`.
    #[serde(default)]
    pub coalesce: Option<bool>,
}

/// String fields whose type errors name the field (serde's own message does not).
mod strings {
    use std::fmt;

    use serde::de::{Deserializer, Error, Visitor};

    struct Named(&'static str);

    impl<'de> Visitor<'de> for Named {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_string<E: Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
    }

    struct OptNamed(&'static str);

    impl<'de> Visitor<'de> for OptNamed {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_string(Named(self.0)).map(Some)
        }
    }

    pub fn receiver_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        d.deserialize_string(Named("receiver_id as a JSON string (a NEAR account id)"))
    }

    pub fn amount<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        d.deserialize_string(Named(
            "amount as a JSON string of digits (money is never a JSON number)",
        ))
    }

    pub fn token<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_option(OptNamed("token as a JSON string (a NEP-141 contract id)"))
    }

    pub fn memo<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_option(OptNamed("memo as a JSON string"))
    }
}

/// A claim (one payout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimView {
    /// Claim id.
    pub id: i64,
    /// `event` (found on chain by an indexer rule), `manual` (`POST /send-ft`) or `campaign` (a row of an
    /// uploaded campaign file).
    pub source: String,
    /// `held` (waiting for its campaign's approval), `pending`, `submitted`, `confirmed` or `failed`.
    pub status: String,
    /// NEP-141 contract paying it.
    pub token: String,
    /// Receiving account.
    pub receiver_id: String,
    /// Amount in the token's smallest unit (decimal string).
    pub amount: String,
    /// Memo.
    pub memo: Option<String>,
    /// Transactions carrying it that provably died.
    pub attempts: i32,
    /// Last failure message (the reason of a `failed` claim).
    pub last_error: Option<String>,
    /// A `pending` claim whose transfer failed for a transient reason: `paused`, `balance`, `registration` or
    /// `unknown` (it is tried again from `retry_at`, a bounded number of times).
    pub retry_kind: Option<String>,
    /// Not tried again before this.
    pub retry_at: Option<DateTime<Utc>>,
    /// Hash of the transaction carrying it now (or last).
    pub tx_hash: Option<String>,
    /// Event claims: the indexer rule.
    pub rule: Option<String>,
    /// Event claims: the receipt whose log held the event.
    pub receipt_id: Option<String>,
    /// Event claims: height of the block with the event.
    pub trigger_block_height: Option<i64>,
    /// Manual claims: the client's `Idempotency-Key` (scoped to the API token that sent it).
    pub idempotency_key: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it was confirmed.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// Whether it may share an `ft_transfer` with other claims of its receiver (coalescing).
    #[serde(default = "yes")]
    pub coalesce: bool,
    /// The campaign it belongs to (`GET /campaigns/{id}`), if any.
    pub campaign_id: Option<i64>,
    /// Its row's key in that campaign (`external_id`, or `#<line number>`).
    pub row_key: Option<String>,
    /// `GET /claims/{id}`: the transfer carrying (or that paid) it, once it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferView>,
}

fn yes() -> bool {
    true
}

/// The `ft_transfer` that carries a claim: one action of its transaction, paying this claim alone or
/// merged with others of the same receiver (their sum, every id in its memo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransferView {
    /// The transaction's hash.
    pub tx_hash: String,
    /// The transaction's status (`signed`, `submitted`, `included`, `final`, `failed`, `dropped`).
    pub tx_status: String,
    /// Index of the transfer among the transaction's `ft_transfer` actions (0-based).
    pub transfer_index: usize,
    /// Every claim the transfer pays (this one included), in memo order.
    pub claim_ids: Vec<i64>,
}

impl From<payouts_store::transactions::ClaimTransfer> for TransferView {
    fn from(t: payouts_store::transactions::ClaimTransfer) -> Self {
        Self {
            tx_hash: t.tx_hash,
            tx_status: t.tx_status.as_str().to_string(),
            transfer_index: t.transfer_index,
            claim_ids: t.claim_ids,
        }
    }
}

impl From<Claim> for ClaimView {
    fn from(c: Claim) -> Self {
        Self {
            id: c.id.0,
            source: c.source.as_str().to_string(),
            status: c.status.as_str().to_string(),
            token: c.token_contract,
            receiver_id: c.receiver_id,
            amount: c.amount.to_string(),
            memo: c.memo,
            attempts: c.attempts,
            last_error: c.last_error,
            retry_kind: c.retry_kind,
            retry_at: c.retry_at,
            tx_hash: c.current_tx_hash,
            rule: c.rule,
            receipt_id: c.receipt_id,
            trigger_block_height: c.trigger_block_height,
            idempotency_key: c
                .idempotency_key
                .as_deref()
                .map(|k| client_key(k).to_string()),
            created_at: c.created_at,
            updated_at: c.updated_at,
            confirmed_at: c.confirmed_at,
            coalesce: c.may_coalesce,
            campaign_id: c.campaign_id,
            row_key: c.row_key,
            transfer: None,
        }
    }
}

/// The client's `Idempotency-Key` of a stored key: manual sends store `<token name> <key>` (keys are scoped
/// to the API token that made them); keys stored before that scoping, or by other writers, have no space.
pub fn client_key(stored: &str) -> &str {
    stored.split_once(' ').map_or(stored, |(_, k)| k)
}

/// One page of `GET /claims`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimPage {
    /// Newest first.
    pub claims: Vec<ClaimView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}
