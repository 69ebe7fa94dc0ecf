//! Why an indexer stream is not advancing (`indexer_stalls`), so `/ready` and `/status`, which may run in
//! another process, can say so. The indexer reports a stall when the next block does not chain onto its
//! cursor (`prev_hash` is not the cursor's hash: a block is missing from the source) or when its block
//! source has failed for longer than `stuck_after_secs`, and clears it once the stream moves again.

use chrono::{DateTime, Utc};
use diesel::sql_types::{Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::error::Result;

/// What holds a stream back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StallKind {
    /// The next block's `prev_hash` is not the hash of the last processed block.
    ChainGap,
    /// The block source keeps failing (missing or unreadable objects, HTTP or S3 errors).
    Source,
}

impl StallKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            StallKind::ChainGap => "chain_gap",
            StallKind::Source => "source",
        }
    }
}

/// A stored stall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stall {
    /// The cursor name.
    pub stream: String,
    /// What kind.
    pub kind: StallKind,
    /// What is wrong, for operators (heights, hashes, object keys; never secrets).
    pub reason: String,
    /// Since when (kept while the kind stays the same).
    pub since: DateTime<Utc>,
    /// Last report.
    pub updated_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    stream: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    reason: String,
    #[diesel(sql_type = Timestamptz)]
    since: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
}

/// Records (or refreshes) the stall of `stream`. `since` stays put while the kind is unchanged.
pub async fn report_stall(
    conn: &mut AsyncPgConnection,
    stream: &str,
    kind: StallKind,
    reason: &str,
) -> Result<()> {
    diesel::sql_query(
        "INSERT INTO indexer_stalls (stream, kind, reason) VALUES ($1, $2, $3) \
         ON CONFLICT (stream) DO UPDATE SET reason = EXCLUDED.reason, updated_at = now(), \
         since = CASE WHEN indexer_stalls.kind = EXCLUDED.kind THEN indexer_stalls.since ELSE now() END, \
         kind = EXCLUDED.kind",
    )
    .bind::<Text, _>(stream)
    .bind::<Text, _>(kind.as_str())
    .bind::<Text, _>(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes the stall of `stream`, if any. Returns whether there was one.
pub async fn clear_stall(conn: &mut AsyncPgConnection, stream: &str) -> Result<bool> {
    let n = diesel::sql_query("DELETE FROM indexer_stalls WHERE stream = $1")
        .bind::<Text, _>(stream)
        .execute(conn)
        .await?;
    Ok(n > 0)
}

/// The stall of `stream`, if it is stalled.
pub async fn read_stall(conn: &mut AsyncPgConnection, stream: &str) -> Result<Option<Stall>> {
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT stream, kind, reason, since, updated_at FROM indexer_stalls WHERE stream = $1",
    )
    .bind::<Text, _>(stream)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().map(|r| Stall {
        stream: r.stream,
        kind: if r.kind == "chain_gap" {
            StallKind::ChainGap
        } else {
            StallKind::Source
        },
        reason: r.reason,
        since: r.since,
        updated_at: r.updated_at,
    }))
}
