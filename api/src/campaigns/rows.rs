//! Reading a campaign file one line at a time: CSV with a header line, or JSON lines (one object a line).
//! Only the current line is ever held. A CSV field may be quoted (`"a, b"`, `""` for a quote) but never spans
//! lines: every field that could hold a newline (a memo) must not contain one anyway.

/// The columns / keys a row may carry.
pub const FIELDS: [&str; 5] = [
    "receiver_id",
    "amount",
    "amount_tokens",
    "memo",
    "external_id",
];

/// The file's format, told by its first non-empty line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// CSV; the header named these columns, in this order (indexes into [`FIELDS`]).
    Csv(Vec<usize>),
    /// One JSON object a line.
    JsonLines,
}

/// A problem with the whole file (the upload is refused, no row is looked at further).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The CSV header names a column we do not know (a typo would silently drop a field).
    #[error("unknown column `{0}` in the header; columns are receiver_id, amount or amount_tokens, memo, external_id")]
    UnknownColumn(String),
    /// A column named twice.
    #[error("column `{0}` appears twice in the header")]
    DuplicateColumn(String),
    /// The header lacks a required column.
    #[error("the header needs a `{0}` column")]
    MissingColumn(&'static str),
    /// The header line is not valid CSV.
    #[error("the header line is not valid CSV: {0}")]
    BadHeader(String),
}

/// One row's fields as written (empty CSV fields and JSON nulls are absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawRow {
    /// `receiver_id`.
    pub receiver_id: Option<String>,
    /// `amount` (smallest unit).
    pub amount: Option<String>,
    /// `amount_tokens` (token units).
    pub amount_tokens: Option<String>,
    /// `memo`.
    pub memo: Option<String>,
    /// `external_id`.
    pub external_id: Option<String>,
}

impl RawRow {
    fn set(&mut self, field: usize, value: String) {
        let slot = match field {
            0 => &mut self.receiver_id,
            1 => &mut self.amount,
            2 => &mut self.amount_tokens,
            3 => &mut self.memo,
            _ => &mut self.external_id,
        };
        *slot = Some(value);
    }
}

/// Why a line is not a row (field `None`: the line as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// The field at fault, if one.
    pub field: Option<&'static str>,
    /// What is wrong, for a person.
    pub reason: String,
}

impl LineError {
    fn line(reason: impl Into<String>) -> Self {
        Self {
            field: None,
            reason: reason.into(),
        }
    }
}

/// Tells the format from the first non-empty line (without its line ending). `Ok(None)` is not possible:
/// a line that is not a JSON object is taken as a CSV header.
pub fn detect(first: &str) -> Result<Format, FileError> {
    let first = first.strip_prefix('\u{feff}').unwrap_or(first);
    if first.trim_start().starts_with('{') {
        return Ok(Format::JsonLines);
    }
    let names = split_csv(first).map_err(FileError::BadHeader)?;
    let mut cols = Vec::with_capacity(names.len());
    for name in names {
        let name = name.trim();
        let Some(i) = FIELDS.iter().position(|f| *f == name) else {
            let shown: String = name.chars().take(64).collect();
            return Err(FileError::UnknownColumn(shown));
        };
        if cols.contains(&i) {
            return Err(FileError::DuplicateColumn(name.to_string()));
        }
        cols.push(i);
    }
    if !cols.contains(&0) {
        return Err(FileError::MissingColumn("receiver_id"));
    }
    if !cols.contains(&1) && !cols.contains(&2) {
        return Err(FileError::MissingColumn("amount` or `amount_tokens"));
    }
    Ok(Format::Csv(cols))
}

/// Splits one CSV line into fields (RFC 4180 quoting, no field spanning lines).
pub fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            (true, '"') => {
                quoted = false;
                if !matches!(chars.peek(), None | Some(',')) {
                    return Err("a closing quote must end its field".into());
                }
            }
            (true, c) => cur.push(c),
            (false, '"') if cur.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            (false, '"') => {
                return Err(
                    "a quote inside an unquoted field (quote the whole field and double the quote)"
                        .into(),
                )
            }
            (false, ',') => {
                fields.push(std::mem::take(&mut cur));
                was_quoted = false;
            }
            (false, c) => cur.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed on its line (fields cannot span lines)".into());
    }
    fields.push(cur);
    Ok(fields)
}

/// Reads one data line of `format` into its fields.
pub fn read_row(format: &Format, line: &str) -> Result<RawRow, LineError> {
    match format {
        Format::Csv(cols) => {
            let fields = split_csv(line).map_err(LineError::line)?;
            if fields.len() != cols.len() {
                return Err(LineError::line(format!(
                    "{} fields; the header has {}",
                    fields.len(),
                    cols.len()
                )));
            }
            let mut row = RawRow::default();
            for (value, col) in fields.into_iter().zip(cols) {
                if !value.is_empty() {
                    row.set(*col, value);
                }
            }
            Ok(row)
        }
        Format::JsonLines => read_json(line),
    }
}

fn read_json(line: &str) -> Result<RawRow, LineError> {
    let Pairs(pairs) = serde_json::from_str(line)
        .map_err(|e| LineError::line(format!("not a JSON object: {e}")))?;
    let mut row = RawRow::default();
    let mut seen: Vec<&str> = Vec::with_capacity(pairs.len());
    for (key, _) in &pairs {
        if seen.contains(&key.as_str()) {
            let shown: String = key.chars().take(64).collect();
            return Err(LineError::line(format!(
                "key `{shown}` appears twice in the object; which one is meant is not clear"
            )));
        }
        seen.push(key);
    }
    for (key, value) in pairs {
        let Some(i) = FIELDS.iter().position(|f| *f == key) else {
            let shown: String = key.chars().take(64).collect();
            return Err(LineError::line(format!(
                "unknown key `{shown}`; keys are receiver_id, amount or amount_tokens, memo, external_id"
            )));
        };
        match value {
            serde_json::Value::Null => {}
            serde_json::Value::String(s) if s.is_empty() => {}
            serde_json::Value::String(s) => row.set(i, s),
            // A JSON number is a float to most writers: 10^24 comes out rounded. Strings only.
            _ => {
                return Err(LineError {
                    field: Some(FIELDS[i]),
                    reason: format!(
                        "{} must be a JSON string (amounts as \"12.5\", not 12.5)",
                        FIELDS[i]
                    ),
                })
            }
        }
    }
    Ok(row)
}

/// A JSON object's members in order, duplicates kept (a map would silently keep the last).
struct Pairs(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Pairs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Pairs, A::Error> {
                let mut v = Vec::new();
                while let Some(pair) = m.next_entry::<String, serde_json::Value>()? {
                    if v.len() >= 16 {
                        return Err(serde::de::Error::custom("more than 16 keys"));
                    }
                    v.push(pair);
                }
                Ok(Pairs(v))
            }
        }
        d.deserialize_map(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_quotes() {
        assert_eq!(split_csv("a,b,,c").unwrap(), ["a", "b", "", "c"]);
        assert_eq!(
            split_csv(r#""x, y","say ""hi""",z"#).unwrap(),
            ["x, y", r#"say "hi""#, "z"]
        );
        assert_eq!(split_csv("").unwrap(), [""]);
        assert!(split_csv(r#""open"#).is_err());
        assert!(split_csv(r#"ab"c"#).is_err());
        assert!(split_csv(r#""a"b"#).is_err());
    }

    #[test]
    fn header_decides_the_format() {
        assert_eq!(
            detect("\u{feff}receiver_id,amount").unwrap(),
            Format::Csv(vec![0, 1])
        );
        assert_eq!(
            detect("external_id, receiver_id ,amount_tokens,memo").unwrap(),
            Format::Csv(vec![4, 0, 2, 3])
        );
        assert_eq!(
            detect(r#"{"receiver_id":"a.near"}"#).unwrap(),
            Format::JsonLines
        );
        assert_eq!(
            detect("reciever_id,amount"),
            Err(FileError::UnknownColumn("reciever_id".into()))
        );
        assert_eq!(
            detect("receiver_id,amount,amount"),
            Err(FileError::DuplicateColumn("amount".into()))
        );
        assert_eq!(
            detect("amount"),
            Err(FileError::MissingColumn("receiver_id"))
        );
        assert!(detect("receiver_id,memo").is_err());
    }

    #[test]
    fn rows_from_csv_and_json() {
        let csv = detect("receiver_id,amount,memo").unwrap();
        let row = read_row(&csv, "alice.near,5,").unwrap();
        assert_eq!(row.receiver_id.as_deref(), Some("alice.near"));
        assert_eq!(row.amount.as_deref(), Some("5"));
        assert_eq!(row.memo, None);
        assert!(read_row(&csv, "alice.near,5")
            .unwrap_err()
            .reason
            .contains("2 fields"));

        let json = Format::JsonLines;
        let row = read_row(
            &json,
            r#"{"receiver_id":"bob.near","amount_tokens":"1.5","memo":null}"#,
        )
        .unwrap();
        assert_eq!(row.amount_tokens.as_deref(), Some("1.5"));
        let err = read_row(
            &json,
            r#"{"receiver_id":"bob.near","amount":1000000000000000000000000}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, Some("amount"));
        assert!(read_row(&json, r#"{"receiver":"bob.near"}"#).is_err());
        assert!(read_row(&json, "[1,2]").is_err());
        let twice = read_row(
            &json,
            r#"{"receiver_id":"bob.near","amount":"1","amount":"1000"}"#,
        )
        .unwrap_err();
        assert!(
            twice.reason.contains("`amount` appears twice"),
            "{}",
            twice.reason
        );
    }
}
