//! Replay jobs (`replay_jobs`): `POST /admin/replay` inserts one, an indexer process takes it and runs the
//! indexer's replay path, and any API process reads its state. The API never runs indexer code.
//!
//! One job is active (queued or running) at a time across the service (`replay_jobs_one_active`); a second
//! request finds the active one instead ([`Enqueued::Busy`]). A running job carries its owner (the indexer
//! process's id) and a heartbeat; a job whose heartbeat is older than the taker's `stale_after` is taken
//! over, so a killed indexer's replay resumes in the next one. A replay is idempotent (claims have natural
//! keys, the cursor does not move), so running a range twice, or half of it again, inserts nothing twice.
//! An owner that stops gracefully hands its job back to the queue ([`release`]).

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::error::{Result, StoreError};

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayJobState {
    /// Waiting for an indexer process.
    Queued,
    /// An indexer process runs it.
    Running,
    /// Finished.
    Done,
    /// Stopped with an error.
    Failed,
}

impl ReplayJobState {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            other => return Err(StoreError::Corrupt(format!("replay_jobs.state {other:?}"))),
        })
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayJob {
    /// Primary key.
    pub id: i64,
    /// The indexer stream (cursor name) whose configuration runs it.
    pub stream: String,
    /// First block.
    pub from_height: u64,
    /// Last block (inclusive).
    pub to_height: u64,
    /// Writes rolled back.
    pub dry_run: bool,
    /// State.
    pub state: ReplayJobState,
    /// The API token's name that asked.
    pub requested_by: String,
    /// Last block committed so far.
    pub progress_height: Option<u64>,
    /// Blocks read (when done).
    pub blocks: u64,
    /// Matching event items (when done).
    pub events: u64,
    /// New claim rows, or would-be ones when dry (when done).
    pub new_claims: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// Asked.
    pub created_at: DateTime<Utc>,
    /// First taken by an indexer.
    pub started_at: Option<DateTime<Utc>>,
    /// Finished.
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    stream: String,
    #[diesel(sql_type = BigInt)]
    from_height: i64,
    #[diesel(sql_type = BigInt)]
    to_height: i64,
    #[diesel(sql_type = Bool)]
    dry_run: bool,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Text)]
    requested_by: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    progress_height: Option<i64>,
    #[diesel(sql_type = BigInt)]
    blocks: i64,
    #[diesel(sql_type = BigInt)]
    events: i64,
    #[diesel(sql_type = BigInt)]
    new_claims: i64,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    started_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    finished_at: Option<DateTime<Utc>>,
}

fn unsigned(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("replay_jobs.{what} {v}")))
}

fn signed(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Invalid(format!("{what} {v} is beyond i64")))
}

impl TryFrom<Row> for ReplayJob {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<Self> {
        Ok(Self {
            id: r.id,
            stream: r.stream,
            from_height: unsigned(r.from_height, "from_height")?,
            to_height: unsigned(r.to_height, "to_height")?,
            dry_run: r.dry_run,
            state: ReplayJobState::parse(&r.state)?,
            requested_by: r.requested_by,
            progress_height: r
                .progress_height
                .map(|h| unsigned(h, "progress_height"))
                .transpose()?,
            blocks: unsigned(r.blocks, "blocks")?,
            events: unsigned(r.events, "events")?,
            new_claims: unsigned(r.new_claims, "new_claims")?,
            error: r.error,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        })
    }
}

const COLUMNS: &str =
    "id, stream, from_height, to_height, dry_run, state, requested_by, progress_height, \
                       blocks, events, new_claims, error, created_at, started_at, finished_at";

fn one(rows: Vec<Row>) -> Result<Option<ReplayJob>> {
    rows.into_iter().next().map(ReplayJob::try_from).transpose()
}

/// What [`enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// The new job.
    Queued(ReplayJob),
    /// Another job is queued or running: this one.
    Busy(ReplayJob),
}

/// Queues a replay of `from..=to` for `stream`, unless one is active.
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    stream: &str,
    from: u64,
    to: u64,
    dry_run: bool,
    requested_by: &str,
) -> Result<Enqueued> {
    if from > to {
        return Err(StoreError::Invalid(format!(
            "replay from {from} is after to {to}"
        )));
    }
    let rows: Vec<Row> = diesel::sql_query(format!(
        "INSERT INTO replay_jobs (stream, from_height, to_height, dry_run, requested_by) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind::<Text, _>(stream)
    .bind::<BigInt, _>(signed(from, "from")?)
    .bind::<BigInt, _>(signed(to, "to")?)
    .bind::<Bool, _>(dry_run)
    .bind::<Text, _>(requested_by)
    .load(conn)
    .await?;
    if let Some(job) = one(rows)? {
        return Ok(Enqueued::Queued(job));
    }
    let rows: Vec<Row> = diesel::sql_query(format!(
        "SELECT {COLUMNS} FROM replay_jobs WHERE state IN ('queued', 'running') ORDER BY id LIMIT 1"
    ))
    .load(conn)
    .await?;
    match one(rows)? {
        Some(active) => Ok(Enqueued::Busy(active)),
        // The active one finished between the two statements: try once more.
        None => Box::pin(enqueue(conn, stream, from, to, dry_run, requested_by)).await,
    }
}

/// The most recent job, if any.
pub async fn latest(conn: &mut AsyncPgConnection) -> Result<Option<ReplayJob>> {
    let rows: Vec<Row> = diesel::sql_query(format!(
        "SELECT {COLUMNS} FROM replay_jobs ORDER BY id DESC LIMIT 1"
    ))
    .load(conn)
    .await?;
    one(rows)
}

/// Takes the oldest queued job of `stream` for `owner`, or a running one whose heartbeat is older than
/// `stale_after_secs` (its owner died).
pub async fn take_next(
    conn: &mut AsyncPgConnection,
    stream: &str,
    owner: &str,
    stale_after_secs: u32,
) -> Result<Option<ReplayJob>> {
    let rows: Vec<Row> = diesel::sql_query(format!(
        "UPDATE replay_jobs SET state = 'running', owner = $2, heartbeat_at = now(), \
         started_at = coalesce(started_at, now()) \
         WHERE id = (SELECT id FROM replay_jobs WHERE stream = $1 AND (state = 'queued' \
             OR (state = 'running' AND heartbeat_at < now() - make_interval(secs => $3))) \
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING {COLUMNS}"
    ))
    .bind::<Text, _>(stream)
    .bind::<Text, _>(owner)
    .bind::<diesel::sql_types::Integer, _>(i32::try_from(stale_after_secs).unwrap_or(i32::MAX))
    .load(conn)
    .await?;
    one(rows)
}

/// Records progress and renews `owner`'s hold; `false` when the job is no longer `owner`'s (taken over).
pub async fn heartbeat(
    conn: &mut AsyncPgConnection,
    id: i64,
    owner: &str,
    progress_height: Option<u64>,
) -> Result<bool> {
    let progress = progress_height
        .map(|h| signed(h, "progress_height"))
        .transpose()?;
    let n = diesel::sql_query(
        "UPDATE replay_jobs SET heartbeat_at = now(), progress_height = coalesce($3, progress_height) \
         WHERE id = $1 AND owner = $2 AND state = 'running'",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(owner)
    .bind::<Nullable<BigInt>, _>(progress)
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Finished: blocks read, matching events, new (or would-be) claims.
    Done {
        /// Blocks read.
        blocks: u64,
        /// Matching event items.
        events: u64,
        /// New claim rows (would-be when dry).
        new_claims: u64,
    },
    /// Stopped with this error.
    Failed(String),
}

/// Ends `owner`'s job; `false` when it was no longer `owner`'s.
pub async fn finish(
    conn: &mut AsyncPgConnection,
    id: i64,
    owner: &str,
    outcome: &Outcome,
) -> Result<bool> {
    let (state, blocks, events, new_claims, error) = match outcome {
        Outcome::Done {
            blocks,
            events,
            new_claims,
        } => ("done", *blocks, *events, *new_claims, None),
        Outcome::Failed(e) => ("failed", 0, 0, 0, Some(e.as_str())),
    };
    let n = diesel::sql_query(
        "UPDATE replay_jobs SET state = $3, blocks = $4, events = $5, new_claims = $6, error = $7, \
         owner = NULL, heartbeat_at = NULL, finished_at = now() \
         WHERE id = $1 AND owner = $2 AND state = 'running'",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(owner)
    .bind::<Text, _>(state)
    .bind::<BigInt, _>(signed(blocks, "blocks")?)
    .bind::<BigInt, _>(signed(events, "events")?)
    .bind::<BigInt, _>(signed(new_claims, "new_claims")?)
    .bind::<Nullable<Text>, _>(error)
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Hands `owner`'s running job back to the queue (a graceful stop): the next indexer process runs it.
pub async fn release(conn: &mut AsyncPgConnection, id: i64, owner: &str) -> Result<bool> {
    let n = diesel::sql_query(
        "UPDATE replay_jobs SET state = 'queued', owner = NULL, heartbeat_at = NULL \
         WHERE id = $1 AND owner = $2 AND state = 'running'",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(owner)
    .execute(conn)
    .await?;
    Ok(n == 1)
}
