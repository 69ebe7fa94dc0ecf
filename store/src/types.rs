//! Domain value types: money, ids and the status enums, parsed once at the edge.

use std::fmt;
use std::str::FromStr;

use bigdecimal::num_bigint::BigInt;
use bigdecimal::BigDecimal;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::{Numeric, Text};
use serde::{Deserialize, Serialize};

/// An amount of token or NEAR in yocto units (10^-24 of a NEAR; token units per its decimals).
///
/// Stored as `NUMERIC(39,0)`, serialised as a decimal string. Never a float.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, AsExpression, FromSqlRow,
)]
#[diesel(sql_type = Numeric)]
pub struct Yocto(pub u128);

/// Why a string is not a valid [`Yocto`] amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Empty input.
    #[error("amount is empty")]
    Empty,
    /// Anything but the digits 0-9 (signs, dots, exponents, spaces).
    #[error("amount must be a whole number of yocto units written with the digits 0-9 only")]
    NotDigits,
    /// More than `u128::MAX`.
    #[error("amount does not fit in 128 bits (max 340282366920938463463374607431768211455)")]
    TooLarge,
}

impl FromStr for Yocto {
    type Err = AmountError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(AmountError::Empty);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::NotDigits);
        }
        s.parse::<u128>()
            .map(Yocto)
            .map_err(|_| AmountError::TooLarge)
    }
}

impl fmt::Display for Yocto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Yocto {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Yocto {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl From<Yocto> for BigDecimal {
    fn from(v: Yocto) -> Self {
        BigDecimal::new(BigInt::from(v.0), 0)
    }
}

impl TryFrom<&BigDecimal> for Yocto {
    type Error = AmountError;

    fn try_from(v: &BigDecimal) -> Result<Self, Self::Error> {
        if !v.is_integer() {
            return Err(AmountError::NotDigits);
        }
        let (int, _) = v.with_scale(0).into_bigint_and_exponent();
        u128::try_from(int)
            .map(Yocto)
            .map_err(|_| AmountError::TooLarge)
    }
}

impl ToSql<Numeric, Pg> for Yocto {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        let dec = BigDecimal::from(*self);
        <BigDecimal as ToSql<Numeric, Pg>>::to_sql(&dec, &mut out.reborrow())
    }
}

impl FromSql<Numeric, Pg> for Yocto {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        let dec = <BigDecimal as FromSql<Numeric, Pg>>::from_sql(bytes)?;
        Ok(Yocto::try_from(&dec)?)
    }
}

/// Primary key of a claim.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    AsExpression,
    FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Int8)]
#[serde(transparent)]
pub struct ClaimId(pub i64);

impl fmt::Display for ClaimId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl ToSql<diesel::sql_types::Int8, Pg> for ClaimId {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <i64 as ToSql<diesel::sql_types::Int8, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<diesel::sql_types::Int8, Pg> for ClaimId {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <i64 as FromSql<diesel::sql_types::Int8, Pg>>::from_sql(bytes).map(ClaimId)
    }
}

/// A text-backed status enum: the SQL column is `TEXT` with a `CHECK` listing the same words.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, AsExpression, FromSqlRow)]
        #[diesel(sql_type = Text)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in lifecycle order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word stored in the database and shown in the API.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} `{other}`", stringify!($name))),
                }
            }
        }

        impl ToSql<Text, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <str as ToSql<Text, Pg>>::to_sql(self.as_str(), out)
            }
        }

        impl FromSql<Text, Pg> for $name {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                let s = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
                Ok(s.parse::<$name>()?)
            }
        }
    };
}

text_enum! {
    /// Where a claim comes from.
    ClaimSource {
        /// Found in an on-chain NEP-297 event by an indexer rule.
        Event => "event",
        /// Requested through `POST /send-ft`.
        Manual => "manual",
        /// A row of an uploaded campaign file (see [`crate::campaigns`]).
        Campaign => "campaign",
    }
}

text_enum! {
    /// A claim's lifecycle: `pending → submitted → confirmed`, or `→ failed`; a claim of a campaign that needs
    /// approval starts `held` and becomes `pending` on approval (or `failed` on rejection).
    ClaimStatus {
        /// Waiting for its campaign's approval; the distributor never sees it (it locks `pending` only).
        Held => "held",
        /// Waiting to be put in a batch.
        Pending => "pending",
        /// Carried by a signed transaction that is not known dead.
        Submitted => "submitted",
        /// Paid: the token contract's receipt succeeded. Final.
        Confirmed => "confirmed",
        /// Permanently failed, with a reason. Final.
        Failed => "failed",
    }
}

impl ClaimStatus {
    /// Whether the lifecycle allows `self → to`.
    ///
    /// `submitted → pending` is the hand-back of a provably dead transaction; `confirmed` and `failed` are final.
    pub fn can_become(self, to: ClaimStatus) -> bool {
        use ClaimStatus::*;
        matches!(
            (self, to),
            (Held, Pending)
                | (Held, Failed)
                | (Pending, Submitted)
                | (Pending, Failed)
                | (Submitted, Confirmed)
                | (Submitted, Pending)
                | (Submitted, Failed)
        )
    }
}

text_enum! {
    /// What a campaign was made from.
    CampaignKind {
        /// An uploaded CSV or JSON lines file.
        File => "file",
        /// One `POST /send-ft` above `api.single_approval_threshold`.
        Send => "send",
    }
}

text_enum! {
    /// A campaign's lifecycle: `uploaded → running → done`, or through `awaiting_approval → approved | rejected`
    /// when its total is above the approval threshold.
    CampaignStatus {
        /// Stored, no approval needed; its claims are pending.
        Uploaded => "uploaded",
        /// Its claims are held until a second API token approves.
        AwaitingApproval => "awaiting_approval",
        /// Approved by a token other than the creator's; its claims are pending.
        Approved => "approved",
        /// Rejected; its claims failed without being paid. Final.
        Rejected => "rejected",
        /// The distributor has started paying it.
        Running => "running",
        /// Every claim is confirmed or failed. Final.
        Done => "done",
    }
}

text_enum! {
    /// A signed batch's lifecycle: `signed → submitted → included → final`, or `failed` / `dropped`.
    TxStatus {
        /// Persisted, not yet broadcast.
        Signed => "signed",
        /// Broadcast at least once.
        Submitted => "submitted",
        /// Seen in a block; its receipt has not executed yet.
        Included => "included",
        /// Its receipt executed successfully.
        Final => "final",
        /// Rejected, or its receipt failed.
        Failed => "failed",
        /// Provably never executed (nonce passed, not on chain).
        Dropped => "dropped",
    }
}

text_enum! {
    /// What an incident is about (see [`crate::incidents`]).
    IncidentKind {
        /// A successful `ft_transfer` carrying a claim's memo whose receipt is not the receipt of a
        /// non-dropped stored transaction carrying that claim (a foreign payment, or a second one).
        UnexpectedMemoPayment => "unexpected_memo_payment",
        /// A transaction of ours that the store declared dead (`dropped`) was found on chain.
        DeadTransactionLanded => "dead_transaction_landed",
        /// A key's nonce on chain was above the nonce the store last used, when its lane started.
        NonceAhead => "nonce_ahead",
    }
}

impl TxStatus {
    /// Whether the lifecycle allows `self → to`.
    pub fn can_become(self, to: TxStatus) -> bool {
        use TxStatus::*;
        matches!(
            (self, to),
            (Signed, Submitted | Included | Final | Failed | Dropped)
                | (Submitted, Included | Final | Failed | Dropped)
                | (Included, Final | Failed)
        )
    }

    /// Whether nothing more can happen to a transaction in this state.
    pub fn is_terminal(self) -> bool {
        matches!(self, TxStatus::Final | TxStatus::Failed | TxStatus::Dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yocto_parses_only_plain_digits() {
        assert_eq!("0".parse::<Yocto>(), Ok(Yocto(0)));
        assert_eq!(
            "1000000000000000000000000".parse::<Yocto>(),
            Ok(Yocto(10u128.pow(24)))
        );
        assert_eq!(u128::MAX.to_string().parse::<Yocto>(), Ok(Yocto(u128::MAX)));
        for bad in ["-1", "+1", "1.5", "1e3", " 1", "abc", "0x10"] {
            assert_eq!(bad.parse::<Yocto>(), Err(AmountError::NotDigits), "{bad}");
        }
        assert_eq!("".parse::<Yocto>(), Err(AmountError::Empty));
        assert_eq!("1".repeat(40).parse::<Yocto>(), Err(AmountError::TooLarge));
    }

    #[test]
    fn yocto_round_trips_through_bigdecimal_and_json() {
        for v in [1u128, 10u128.pow(24), u128::MAX] {
            let dec = BigDecimal::from(Yocto(v));
            assert_eq!(Yocto::try_from(&dec), Ok(Yocto(v)));
            let json = serde_json::to_string(&Yocto(v)).unwrap();
            assert_eq!(json, format!("\"{v}\""));
            assert_eq!(serde_json::from_str::<Yocto>(&json).unwrap(), Yocto(v));
        }
        assert!(Yocto::try_from(&"1.5".parse::<BigDecimal>().unwrap()).is_err());
    }

    #[test]
    fn final_claim_states_never_move() {
        for to in ClaimStatus::ALL {
            assert!(!ClaimStatus::Confirmed.can_become(*to));
            assert!(!ClaimStatus::Failed.can_become(*to));
        }
        assert!(ClaimStatus::Submitted.can_become(ClaimStatus::Pending));
        assert!(!ClaimStatus::Pending.can_become(ClaimStatus::Confirmed));
        // Nothing goes back to `held`, and a held claim is never carried by a transaction.
        for from in ClaimStatus::ALL {
            assert!(!from.can_become(ClaimStatus::Held));
        }
        assert!(!ClaimStatus::Held.can_become(ClaimStatus::Submitted));
    }

    #[test]
    fn status_words_round_trip() {
        for s in ClaimStatus::ALL {
            assert_eq!(s.as_str().parse::<ClaimStatus>(), Ok(*s));
        }
        for s in TxStatus::ALL {
            assert_eq!(s.as_str().parse::<TxStatus>(), Ok(*s));
        }
        assert!("paid".parse::<ClaimStatus>().is_err());
    }
}
