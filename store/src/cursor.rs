//! The indexer cursor: last fully processed block per stream. Read and moved inside the caller's DB
//! transaction, so a block's rows and the cursor move commit together.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::error::{Result, StoreError};
use crate::schema::indexer_cursor;

/// A stored cursor position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Last fully processed block height.
    pub block_height: u64,
    /// Its hash, when known.
    pub block_hash: Option<String>,
}

fn to_i64(height: u64) -> Result<i64> {
    i64::try_from(height)
        .map_err(|_| StoreError::Corrupt(format!("block height {height} out of range")))
}

/// Reads the cursor of `stream`; `None` when the stream never committed a block.
pub async fn read_cursor(conn: &mut AsyncPgConnection, stream: &str) -> Result<Option<Cursor>> {
    let row: Option<(i64, Option<String>)> = indexer_cursor::table
        .find(stream)
        .select((indexer_cursor::block_height, indexer_cursor::block_hash))
        .first(conn)
        .await
        .optional()?;
    row.map(|(h, hash)| {
        let block_height =
            u64::try_from(h).map_err(|_| StoreError::Corrupt(format!("cursor height {h}")))?;
        Ok(Cursor {
            block_height,
            block_hash: hash,
        })
    })
    .transpose()
}

/// Moves the cursor of `stream` forward to `height`. Moving it backwards or to the same height is an error
/// (the caller would be re-committing a block it already committed). Call inside the block's transaction.
pub async fn advance_cursor(
    conn: &mut AsyncPgConnection,
    stream: &str,
    height: u64,
    block_hash: Option<&str>,
) -> Result<()> {
    let height_i = to_i64(height)?;
    // Only a forward move updates the row; "0 rows" means the cursor is already at or past `height`.
    let moved = diesel::sql_query(
        "INSERT INTO indexer_cursor (stream, block_height, block_hash) VALUES ($1, $2, $3) \
         ON CONFLICT (stream) DO UPDATE \
         SET block_height = EXCLUDED.block_height, block_hash = EXCLUDED.block_hash, updated_at = now() \
         WHERE indexer_cursor.block_height < EXCLUDED.block_height",
    )
    .bind::<Text, _>(stream)
    .bind::<BigInt, _>(height_i)
    .bind::<Nullable<Text>, _>(block_hash)
    .execute(conn)
    .await?;
    if moved == 1 {
        return Ok(());
    }
    let current = read_cursor(conn, stream)
        .await?
        .map_or(0, |c| c.block_height);
    Err(StoreError::CursorRegression {
        stream: stream.to_string(),
        current: to_i64(current)?,
        requested: height_i,
    })
}
