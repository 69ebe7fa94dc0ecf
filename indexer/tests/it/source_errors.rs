//! A truncated or missing object in a `dir` source: reported (warn with the key, counted, on the stream's
//! health) within seconds, fetched again with capped back-off (a few fetches a second at most, never a hot
//! loop), the indexer reports itself stuck after `stuck_after_secs`, a replay gives up with the reason after
//! `replay_max_attempts`, and the indexer resumes once the object is good again.

use std::path::Path;
use std::time::{Duration, Instant};

use payouts_indexer::replay::replay;
use payouts_indexer::source::{self, Fetch, Retry, SourceConfig};
use payouts_indexer::{IndexerConfig, IndexerError, StallState};
use payouts_store::stalls::StallKind;
use payouts_store::testdb::TestDb;

use crate::continuity::{claims, cursor, dir_config, eventually, spawn, stall};
use crate::lakechain::write_chain;

const B: u64 = 130_000_000;

fn key(height: u64, file: &str) -> String {
    format!("{height:012}/{file}")
}

fn truncate(path: &Path) {
    let text = std::fs::read(path).unwrap();
    std::fs::write(path, &text[..text.len() / 2]).unwrap();
}

/// Streams `B..` from a source whose block `B+1` has `damage` done to its `file`: within 5 s the object
/// is reported failing with its key and `cause`, it is fetched at most a few times a second, and once it is
/// good again the stream goes on with B+1 and B+2.
async fn stream_recovers(file: &str, damage: impl Fn(&Path), cause: &str) {
    let dir = tempfile::tempdir().unwrap();
    write_chain(dir.path(), B - 1, &[B, B + 1, B + 2]);
    let bad = dir.path().join(key(B + 1, file));
    let good = std::fs::read(&bad).unwrap();
    damage(&bad);
    let source = SourceConfig::Dir {
        path: dir.path().to_path_buf(),
    };
    // The defaults: 250 ms, doubling, at most 10 s.
    let fetch = Fetch {
        retry: Retry::default(),
        ..Fetch::ahead(8)
    };
    let started = Instant::now();
    let mut stream = source::start(&source, B, fetch).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.blocks.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.block.header.height, B);
    let failing = eventually(
        Duration::from_secs(5),
        "the failing object reported",
        || async { stream.health.oldest_failure() },
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(failing.key, key(B + 1, file));
    assert!(failing.cause.contains(cause), "{failing:?}");
    // Over the next 4 s: at 250, 500, 1,000, 2,000 ms apart, a handful of fetches, not thousands.
    let errors_before = stream.health.errors_total();
    let watched = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let fetches = stream.health.errors_total() - errors_before;
    let per_second = fetches as f64 / watched.elapsed().as_secs_f64();
    assert!(
        (1..=8).contains(&fetches),
        "{fetches} failed fetches in 4 s"
    );
    assert!(per_second <= 3.0, "{per_second} fetches/s");
    assert!(
        stream.blocks.try_recv().is_err(),
        "nothing past the bad block"
    );

    std::fs::write(&bad, good).unwrap();
    for want in [B + 1, B + 2] {
        let msg = tokio::time::timeout(Duration::from_secs(15), stream.blocks.recv())
            .await
            .expect("the stream resumes once the object is good")
            .unwrap();
        assert_eq!(msg.block.header.height, want);
    }
    assert!(stream.health.failing().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_shard_is_reported_and_retried_with_back_off() {
    stream_recovers("shard_3.json", truncate, "invalid JSON").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_shard_is_reported_and_retried_with_back_off() {
    let remove = |p: &Path| std::fs::remove_file(p).unwrap();
    stream_recovers("shard_3.json", remove, "No such file").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_block_json_is_reported_and_retried_with_back_off() {
    stream_recovers("block.json", truncate, "invalid JSON").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_gives_up_on_a_bad_object_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    write_chain(dir.path(), B - 1, &[B, B + 1, B + 2]);
    truncate(&dir.path().join(key(B + 1, "shard_3.json")));
    std::fs::remove_file(dir.path().join(key(B + 2, "shard_0.json"))).unwrap();
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let cfg = IndexerConfig {
        replay_max_attempts: 4,
        source_retry_initial_ms: 100,
        source_retry_max_ms: 200,
        ..dir_config(dir.path(), B)
    };
    let started = Instant::now();
    let failed = tokio::time::timeout(
        Duration::from_secs(30),
        replay(&pool, &cfg, B, B + 2, false, |_| {}),
    )
    .await
    .expect("the replay ends");
    let Err(IndexerError::Source(why)) = failed else {
        panic!("expected a source error, got {failed:?}");
    };
    assert!(
        why.contains(&key(B + 1, "shard_3.json")) && why.contains("gave up after 4 attempts"),
        "{why}"
    );
    assert!(why.contains("invalid JSON"), "{why}");
    // 100 + 200 + 200 ms of back-off, plus start-up: seconds, not forever.
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_indexer_reports_itself_stuck_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    write_chain(dir.path(), B - 1, &[B, B + 1]);
    let bad = dir.path().join(key(B + 1, "shard_2.json"));
    let good = std::fs::read(&bad).unwrap();
    std::fs::remove_file(&bad).unwrap();
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let cfg = IndexerConfig {
        stuck_after_secs: 1,
        ..dir_config(dir.path(), B)
    };
    let run = spawn(&pool, cfg);
    eventually(Duration::from_secs(30), "block B indexed", || async {
        (cursor(&pool).await == Some(B)).then_some(())
    })
    .await;
    let stuck = eventually(Duration::from_secs(10), "the indexer stuck", || async {
        stall(&pool).await
    })
    .await;
    assert_eq!(stuck.kind, StallKind::Source);
    assert!(
        stuck.reason.contains(&key(B + 1, "shard_2.json")),
        "{}",
        stuck.reason
    );
    let m = run.metrics.snapshot();
    assert_eq!(m.stalled, StallState::Source);
    assert!(
        m.source_errors >= 1 && m.source_failing_objects == 1,
        "{m:?}"
    );

    std::fs::write(&bad, good).unwrap();
    eventually(Duration::from_secs(30), "B+1 indexed", || async {
        (cursor(&pool).await == Some(B + 1)).then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "the stall cleared", || async {
        stall(&pool).await.is_none().then_some(())
    })
    .await;
    assert_eq!(claims(&pool).await, 4);
    assert_eq!(run.metrics.snapshot().stalled, StallState::None);
    run.stop().await;
}
