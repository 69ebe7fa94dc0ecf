//! Chain continuity over a `dir` source of real mainnet lake blocks (re-numbered and re-linked): a block
//! whose `prev_hash` is not the cursor's hash is never processed; a skipped height that still chains is no
//! error; `replay` refuses a range that does not chain and names the broken link.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use payouts_indexer::replay::replay;
use payouts_indexer::source::SourceConfig;
use payouts_indexer::{Indexer, IndexerConfig, IndexerError, IndexerMetrics, StallState};
use payouts_store::cursor::read_cursor;
use payouts_store::stalls::{read_stall, Stall, StallKind};
use payouts_store::testdb::TestDb;
use payouts_store::PgPool;
use tokio_util::sync::CancellationToken;

use crate::lakechain::{hash_of, sweat_rule, write_block, write_chain};

const B: u64 = 120_000_000;

pub fn dir_config(dir: &Path, start: u64) -> IndexerConfig {
    IndexerConfig {
        source: SourceConfig::Dir {
            path: dir.to_path_buf(),
        },
        start_block_height: Some(start),
        rules: vec![sweat_rule()],
        source_retry_initial_ms: 50,
        source_retry_max_ms: 400,
        ..IndexerConfig::default()
    }
}

pub struct Running {
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), IndexerError>>,
    pub metrics: Arc<IndexerMetrics>,
}

pub fn spawn(pool: &PgPool, cfg: IndexerConfig) -> Running {
    let metrics = Arc::new(IndexerMetrics::default());
    let indexer = Indexer::new(pool.clone(), cfg, Arc::clone(&metrics)).unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(indexer.run(stop.clone()));
    Running {
        stop,
        task,
        metrics,
    }
}

impl Running {
    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the indexer stops")
            .unwrap()
            .unwrap();
    }
}

/// Polls `check` until it gives a value, failing after `timeout` ([`payouts_store::testdb::wait_until`]).
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    payouts_store::testdb::wait_until(timeout, what, async || check().await.ok_or("not yet")).await
}

pub async fn cursor(pool: &PgPool) -> Option<u64> {
    let mut conn = payouts_store::get(pool).await.unwrap();
    read_cursor(&mut conn, "main")
        .await
        .unwrap()
        .map(|c| c.block_height)
}

pub async fn stall(pool: &PgPool) -> Option<Stall> {
    let mut conn = payouts_store::get(pool).await.unwrap();
    read_stall(&mut conn, "main").await.unwrap()
}

pub async fn claims(pool: &PgPool) -> i64 {
    use diesel::dsl::count_star;
    use diesel::QueryDsl;
    use diesel_async::RunQueryDsl;
    let mut conn = payouts_store::get(pool).await.unwrap();
    payouts_store::schema::claims::table
        .select(count_star())
        .first(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_holds_the_cursor_until_the_missing_block_appears() {
    let dir = tempfile::tempdir().unwrap();
    write_chain(dir.path(), B - 1, &[B]);
    // B+2 names B+1 as its parent, and B+1 is not in the source.
    write_block(dir.path(), B + 2, B + 1);
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let run = spawn(&pool, dir_config(dir.path(), B));

    eventually(Duration::from_secs(30), "block B indexed", || async {
        (cursor(&pool).await == Some(B)).then_some(())
    })
    .await;
    let stalled = eventually(Duration::from_secs(10), "the gap reported", || async {
        stall(&pool).await
    })
    .await;
    assert_eq!(stalled.kind, StallKind::ChainGap);
    for part in [
        format!("block {}", B + 2),
        hash_of(B + 2).to_string(),
        hash_of(B + 1).to_string(),
        format!("last processed block is {B}"),
        hash_of(B).to_string(),
    ] {
        assert!(
            stalled.reason.contains(&part),
            "{part} in {}",
            stalled.reason
        );
    }
    let m = run.metrics.snapshot();
    assert_eq!((m.chain_breaks, m.stalled), (1, StallState::ChainGap));
    // The indexer keeps fetching (back-off 50–400 ms) and keeps refusing: a couple of seconds later the
    // cursor and the claims are where they were, and the gap is still one gap.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert_eq!(cursor(&pool).await, Some(B));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(claims(&pool).await, 2);
    assert_eq!(run.metrics.snapshot().chain_breaks, 1);

    // The missing block arrives: B+1, then B+2, are indexed, and the stall is gone.
    write_block(dir.path(), B + 1, B);
    eventually(Duration::from_secs(30), "B+2 indexed", || async {
        (cursor(&pool).await == Some(B + 2)).then_some(())
    })
    .await;
    assert_eq!(
        claims(&pool).await,
        6,
        "two claims from each of B, B+1, B+2"
    );
    eventually(Duration::from_secs(10), "the stall cleared", || async {
        stall(&pool).await.is_none().then_some(())
    })
    .await;
    assert_eq!(run.metrics.snapshot().stalled, StallState::None);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_heights_that_still_chain_are_not_gaps() {
    let dir = tempfile::tempdir().unwrap();
    // B+1, B+2 and B+4 were skipped by the chain: B+3's parent is B, B+5's is B+3.
    write_chain(dir.path(), B - 1, &[B, B + 3, B + 5]);
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let run = spawn(&pool, dir_config(dir.path(), B));
    eventually(Duration::from_secs(30), "B+5 indexed", || async {
        (cursor(&pool).await == Some(B + 5)).then_some(())
    })
    .await;
    assert_eq!(claims(&pool).await, 6);
    assert!(stall(&pool).await.is_none());
    let m = run.metrics.snapshot();
    assert_eq!((m.chain_breaks, m.stalled), (0, StallState::None));
    run.stop().await;

    // A restart from the cursor checks the next block against the cursor's stored hash.
    write_block(dir.path(), B + 7, B + 6);
    let run = spawn(&pool, dir_config(dir.path(), B));
    let stalled = eventually(
        Duration::from_secs(10),
        "the gap after a restart",
        || async { stall(&pool).await },
    )
    .await;
    assert!(
        stalled.reason.contains(&hash_of(B + 5).to_string()),
        "{}",
        stalled.reason
    );
    assert_eq!(cursor(&pool).await, Some(B + 5));
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_refuses_a_range_that_does_not_chain() {
    let dir = tempfile::tempdir().unwrap();
    write_chain(dir.path(), B - 1, &[B, B + 1]);
    // B+3 names B+2, which is missing; B+4 follows B+3.
    write_chain(dir.path(), B + 2, &[B + 3, B + 4]);
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let cfg = dir_config(dir.path(), B);

    let ok = replay(&pool, &cfg, B, B + 1, false, |_| {}).await.unwrap();
    assert_eq!((ok.blocks, ok.new_claims), (2, 4));

    let broken = tokio::time::timeout(
        Duration::from_secs(30),
        replay(&pool, &cfg, B, B + 4, true, |_| {}),
    )
    .await
    .expect("the replay ends");
    let Err(IndexerError::Chain(why)) = broken else {
        panic!("expected a chain error, got {broken:?}");
    };
    for part in [
        format!("block {}", B + 3),
        hash_of(B + 2).to_string(),
        format!("before it in the source is {}", B + 1),
        hash_of(B + 1).to_string(),
    ] {
        assert!(why.contains(&part), "{part} in {why}");
    }
    // A range that ends at the hole is refused too: the first block past `to` shows the missing link.
    let broken = replay(&pool, &cfg, B, B + 2, true, |_| {}).await;
    assert!(matches!(broken, Err(IndexerError::Chain(_))), "{broken:?}");
    // From the far side of the hole the range chains again.
    let ok = replay(&pool, &cfg, B + 3, B + 4, true, |_| {})
        .await
        .unwrap();
    assert_eq!(ok.blocks, 2);
}
