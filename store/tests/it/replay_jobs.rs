//! Replay jobs: one active at a time, only the owner moves its job, a stale owner is taken over, a graceful
//! stop hands the job back.

use payouts_store::replay_jobs::{
    enqueue, finish, heartbeat, latest, release, take_next, Enqueued, Outcome, ReplayJobState,
};
use payouts_store::testdb::TestDb;

#[tokio::test]
async fn one_active_job_owned_taken_over_when_stale_and_handed_back() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    assert_eq!(latest(&mut conn).await.unwrap(), None);
    assert!(enqueue(&mut conn, "main", 5, 1, false, "ops")
        .await
        .is_err());

    let Enqueued::Queued(job) = enqueue(&mut conn, "main", 1, 10, false, "ops")
        .await
        .unwrap()
    else {
        panic!("not queued");
    };
    assert_eq!(job.state, ReplayJobState::Queued);
    // A second request finds the active one.
    match enqueue(&mut conn, "main", 20, 30, true, "other")
        .await
        .unwrap()
    {
        Enqueued::Busy(active) => assert_eq!(active.id, job.id),
        q => panic!("{q:?}"),
    }
    // Another stream's indexer does not take it.
    assert_eq!(take_next(&mut conn, "other", "b", 30).await.unwrap(), None);

    let taken = take_next(&mut conn, "main", "a", 30)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((taken.id, taken.state), (job.id, ReplayJobState::Running));
    // Running, fresh heartbeat: nobody else takes it, and only its owner beats or finishes it.
    assert_eq!(take_next(&mut conn, "main", "b", 30).await.unwrap(), None);
    assert!(heartbeat(&mut conn, job.id, "a", Some(4)).await.unwrap());
    assert!(!heartbeat(&mut conn, job.id, "b", Some(9)).await.unwrap());
    let done = Outcome::Done {
        blocks: 10,
        events: 2,
        new_claims: 0,
    };
    assert!(!finish(&mut conn, job.id, "b", &done).await.unwrap());
    assert_eq!(
        latest(&mut conn).await.unwrap().unwrap().progress_height,
        Some(4)
    );

    // "a" stops beating: past the stale limit (0 s here), "b" takes it over and "a" can no longer touch it.
    let over = take_next(&mut conn, "main", "b", 0).await.unwrap().unwrap();
    assert_eq!(over.id, job.id);
    assert!(!heartbeat(&mut conn, job.id, "a", None).await.unwrap());
    assert!(!finish(&mut conn, job.id, "a", &done).await.unwrap());
    assert!(!release(&mut conn, job.id, "a").await.unwrap());

    // "b" stops gracefully: back in the queue, progress kept; then "c" runs it to the end.
    assert!(release(&mut conn, job.id, "b").await.unwrap());
    let queued = latest(&mut conn).await.unwrap().unwrap();
    assert_eq!(
        (queued.state, queued.progress_height),
        (ReplayJobState::Queued, Some(4))
    );
    take_next(&mut conn, "main", "c", 30)
        .await
        .unwrap()
        .unwrap();
    assert!(finish(&mut conn, job.id, "c", &done).await.unwrap());
    let end = latest(&mut conn).await.unwrap().unwrap();
    assert_eq!(
        (end.state, end.blocks, end.events),
        (ReplayJobState::Done, 10, 2)
    );
    assert!(end.finished_at.is_some());
    // Done is final: nobody takes it again, and a new request is queued.
    assert_eq!(take_next(&mut conn, "main", "d", 0).await.unwrap(), None);
    assert!(matches!(
        enqueue(&mut conn, "main", 20, 30, true, "other")
            .await
            .unwrap(),
        Enqueued::Queued(_)
    ));
}
