//! Every row checked before anything is paid: receiver account id, amount (smallest unit or token units),
//! the per-transfer maximum, memo rules, row keys and duplicates within the file. One pass, one line at a time;
//! the memory kept per row is two 128-bit digests (duplicate detection), about 50 MB for a million rows.

use std::collections::HashMap;
use std::str::FromStr;

use near_primitives::types::AccountId;
use payouts_store::campaigns::CampaignRow;
use payouts_store::Yocto;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::amount::parse_token_amount;
use super::rows::{detect, read_row, FileError, Format, LineError, RawRow};

/// Longest `external_id`, in bytes (the stored row key's limit).
pub const MAX_EXTERNAL_ID: usize = 128;

/// The limits rows are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// The token's `ft_metadata.decimals`; `None` when unknown (then `amount_tokens` is a row error).
    pub decimals: Option<u8>,
    /// Per-transfer maximum (`api.max_amount`).
    pub max_amount: Yocto,
    /// Longest memo, in characters (`api.max_memo_chars`).
    pub max_memo_chars: usize,
    /// Most rows a file may hold.
    pub max_rows: u64,
    /// Receivers found not registered with the token (`storage_balance_of` is null) while the distributor
    /// does not register receivers: their rows are errors.
    pub unregistered: std::sync::Arc<std::collections::HashSet<String>>,
}

/// One problem with one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RowError {
    /// 1-based line number in the file (the header is line 1 of a CSV).
    pub row: u64,
    /// The field at fault; `None` for the row as a whole.
    #[schema(value_type = Option<String>)]
    pub field: Option<&'static str>,
    /// What is wrong, for a person.
    pub reason: String,
}

/// What one line was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Blank, or the CSV header.
    Skipped,
    /// A valid row.
    Valid(CampaignRow),
    /// An invalid row, with every problem found.
    Invalid(Vec<RowError>),
}

/// A problem that stops the whole file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StopError {
    /// Bad header.
    #[error(transparent)]
    File(#[from] FileError),
    /// More rows than allowed.
    #[error("the file has more than {0} rows")]
    TooManyRows(u64),
    /// The valid rows add up to more than 128 bits.
    #[error("the rows add up to more than 128 bits of the token's smallest unit")]
    TotalOverflow,
}

/// Totals of a checked file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct Totals {
    /// Data rows (valid and invalid).
    pub rows: u64,
    /// Valid rows.
    pub valid: u64,
    /// Invalid rows.
    pub invalid: u64,
    /// Sum of the valid rows (smallest unit, decimal string).
    #[schema(value_type = String)]
    pub amount: Yocto,
}

/// Checks a file line by line; feed it with [`Validator::line`], then read [`Validator::totals`].
#[derive(Debug)]
pub struct Validator {
    rules: Rules,
    format: Option<Format>,
    line_no: u64,
    totals: Totals,
    /// digest of an external_id → its first line.
    keys: HashMap<u128, u64>,
    /// digest of a receiver → (its first line, whether all its rows so far carry an external_id).
    receivers: HashMap<u128, (u64, bool)>,
}

/// A 128-bit digest of `s` (sha256, first 16 bytes): the duplicate sets keep these, not the strings.
pub(crate) fn digest(s: &str) -> u128 {
    let d = Sha256::digest(s.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    u128::from_le_bytes(b)
}

impl Validator {
    /// A validator for a new file.
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            format: None,
            line_no: 0,
            totals: Totals::default(),
            keys: HashMap::new(),
            receivers: HashMap::new(),
        }
    }

    /// Totals so far.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// Checks the next line of the file (its bytes, without the line ending).
    pub fn line(&mut self, bytes: &[u8]) -> Result<Line, StopError> {
        self.line_no += 1;
        let row = self.line_no;
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let Ok(text) = std::str::from_utf8(bytes) else {
            if self.format.is_none() {
                return Err(FileError::BadHeader("the first line is not UTF-8".into()).into());
            }
            return self.invalid(vec![RowError {
                row,
                field: None,
                reason: "the line is not valid UTF-8".into(),
            }]);
        };
        if text.trim().is_empty() {
            return Ok(Line::Skipped);
        }
        let format = match &self.format {
            Some(f) => f,
            None => {
                let f = detect(text)?;
                let header = matches!(f, Format::Csv(_));
                self.format = Some(f);
                if header {
                    return Ok(Line::Skipped);
                }
                self.format.as_ref().unwrap_or(&Format::JsonLines)
            }
        };
        if self.totals.rows >= self.rules.max_rows {
            return Err(StopError::TooManyRows(self.rules.max_rows));
        }
        let raw = match read_row(format, text) {
            Ok(r) => r,
            Err(LineError { field, reason }) => {
                return self.invalid(vec![RowError { row, field, reason }])
            }
        };
        match self.check(row, raw) {
            Ok(valid) => {
                self.totals.rows += 1;
                self.totals.valid += 1;
                self.totals.amount = Yocto(
                    self.totals
                        .amount
                        .0
                        .checked_add(valid.amount.0)
                        .ok_or(StopError::TotalOverflow)?,
                );
                Ok(Line::Valid(valid))
            }
            Err(errors) => self.invalid(errors),
        }
    }

    fn invalid(&mut self, errors: Vec<RowError>) -> Result<Line, StopError> {
        self.totals.rows += 1;
        self.totals.invalid += 1;
        Ok(Line::Invalid(errors))
    }

    /// Every check of one row; the duplicate maps change only for a valid row.
    fn check(&mut self, row: u64, raw: RawRow) -> Result<CampaignRow, Vec<RowError>> {
        let mut errors = Vec::new();
        let mut err = |field: &'static str, reason: String| {
            errors.push(RowError {
                row,
                field: Some(field),
                reason,
            })
        };

        let receiver = match raw.receiver_id.as_deref().map(AccountId::from_str) {
            None => {
                err("receiver_id", "receiver_id is missing".into());
                None
            }
            Some(Err(e)) => {
                err("receiver_id", format!("not a valid NEAR account id: {e}"));
                None
            }
            Some(Ok(a)) if self.rules.unregistered.contains(a.as_str()) => {
                err(
                    "receiver_id",
                    format!("{a} is not registered with the token (storage_balance_of is null) and the distributor does not register receivers (distributor.register_receivers is off)"),
                );
                None
            }
            Some(Ok(a)) => Some(a),
        };

        let amount = match (raw.amount.as_deref(), raw.amount_tokens.as_deref()) {
            (None, None) => {
                err(
                    "amount",
                    "give amount (smallest unit) or amount_tokens (token units)".into(),
                );
                None
            }
            (Some(_), Some(_)) => {
                err("amount", "give amount or amount_tokens, not both".into());
                None
            }
            (Some(a), None) => match Yocto::from_str(a) {
                Ok(_) if a.len() > 1 && a.starts_with('0') => {
                    err(
                        "amount",
                        "amount must be written without leading zeros".into(),
                    );
                    None
                }
                Ok(v) => Some(("amount", v)),
                Err(e) => {
                    err("amount", e.to_string());
                    None
                }
            },
            (None, Some(t)) => match self.rules.decimals {
                None => {
                    err(
                        "amount_tokens",
                        "the token's decimals are unknown; give amount in its smallest unit".into(),
                    );
                    None
                }
                Some(d) => match parse_token_amount(t, d) {
                    Ok(v) => Some(("amount_tokens", Yocto(v))),
                    Err(e) => {
                        err("amount_tokens", e.to_string());
                        None
                    }
                },
            },
        };
        if let Some((field, v)) = amount {
            if v.0 == 0 {
                err(field, "amount must be more than 0".into());
            } else if v > self.rules.max_amount {
                err(
                    field,
                    format!(
                        "amount {v} is more than the per-transfer maximum {} (api.max_amount)",
                        self.rules.max_amount
                    ),
                );
            }
        }

        if let Some(m) = raw.memo.as_deref() {
            if let Some(why) = crate::text::memo_problem(m, self.rules.max_memo_chars) {
                err("memo", why);
            }
        }

        let key_digest = match raw.external_id.as_deref() {
            None => None,
            Some(k)
                if k.len() > MAX_EXTERNAL_ID
                    || k.starts_with('#')
                    || !k.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                err("external_id", format!(
                    "external_id must be 1 to {MAX_EXTERNAL_ID} printable ASCII characters without spaces, not starting with #"
                ));
                None
            }
            Some(k) => {
                let d = digest(k);
                match self.keys.get(&d) {
                    Some(first) => {
                        err("external_id", format!("external_id also in row {first}"));
                        None
                    }
                    None => Some(d),
                }
            }
        };
        let has_key = raw.external_id.is_some();
        let receiver_digest = receiver.as_ref().map(|r| digest(r.as_str()));
        if let Some(d) = receiver_digest {
            if let Some((first, all_keyed)) = self.receivers.get(&d) {
                if !(has_key && *all_keyed) {
                    err("receiver_id", format!(
                        "receiver also in row {first}; to pay it more than once, give each of its rows an external_id"
                    ));
                }
            }
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        let (Some(receiver), Some((_, amount)), Some(rd)) = (receiver, amount, receiver_digest)
        else {
            return Err(vec![RowError {
                row,
                field: None,
                reason: "invalid row".into(),
            }]);
        };
        if let Some(d) = key_digest {
            self.keys.insert(d, row);
        }
        self.receivers
            .entry(rd)
            .and_modify(|e| e.1 &= has_key)
            .or_insert((row, has_key));
        Ok(CampaignRow {
            row_key: raw.external_id.unwrap_or_else(|| format!("#{row}")),
            receiver_id: receiver.to_string(),
            amount,
            memo: raw.memo,
        })
    }
}
