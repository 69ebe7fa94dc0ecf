use diesel::sql_types::Integer;
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use payouts_store::testdb::TestDb;

#[derive(QueryableByName)]
struct One {
    #[diesel(sql_type = Integer)]
    one: i32,
}

#[tokio::test]
async fn each_test_gets_its_own_database_dropped_afterwards() {
    let a = TestDb::new().await;
    let b = TestDb::new().await;
    assert_ne!(a.url().database(), b.url().database());
    let name = a.url().database().unwrap().to_string();
    let admin = a.url().with_database("postgres");
    drop(a);
    let mut conn = <payouts_store::AsyncPgConnection as payouts_store::AsyncConnection>::establish(
        admin.expose(),
    )
    .await
    .unwrap();
    let rows: Vec<One> = diesel::sql_query(format!(
        "SELECT 1 AS one FROM pg_database WHERE datname = '{name}'"
    ))
    .load(&mut conn)
    .await
    .unwrap();
    assert!(rows.is_empty(), "{name} still exists");
    let rows: Vec<One> = diesel::sql_query("SELECT 1 AS one")
        .load(&mut b.conn().await)
        .await
        .unwrap();
    assert_eq!(rows[0].one, 1);
}

#[tokio::test]
async fn a_panicking_test_still_drops_its_database() {
    let db = TestDb::new().await;
    let name = db.url().database().unwrap().to_string();
    let admin = db.url().with_database("postgres");
    let joined = tokio::spawn(async move {
        let _db = db;
        panic!("test failure inside");
    })
    .await;
    assert!(joined.is_err());
    let mut conn = <payouts_store::AsyncPgConnection as payouts_store::AsyncConnection>::establish(
        admin.expose(),
    )
    .await
    .unwrap();
    let rows: Vec<One> = diesel::sql_query(format!(
        "SELECT 1 AS one FROM pg_database WHERE datname = '{name}'"
    ))
    .load(&mut conn)
    .await
    .unwrap();
    assert!(rows.is_empty(), "{name} survived a panic");
}

#[tokio::test]
async fn a_cluster_stops_and_removes_its_files() {
    use payouts_store::cluster::{find_pg_bin_dir, PgCluster};
    if find_pg_bin_dir().is_none() {
        // Only possible when DATABASE_URL supplies the server; the cluster path is then unused.
        assert!(
            std::env::var("DATABASE_URL").is_ok(),
            "no initdb and no DATABASE_URL"
        );
        return;
    }
    let cluster = tokio::task::spawn_blocking(PgCluster::start)
        .await
        .unwrap()
        .unwrap();
    let dir = cluster.dir().to_path_buf();
    let url = cluster.url("postgres");
    let mut conn = <payouts_store::AsyncPgConnection as payouts_store::AsyncConnection>::establish(
        url.expose(),
    )
    .await
    .unwrap();
    let rows: Vec<One> = diesel::sql_query("SELECT 1 AS one")
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    drop(conn);
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap();
    assert!(!dir.exists(), "{} left behind", dir.display());
    let reconnect =
        <payouts_store::AsyncPgConnection as payouts_store::AsyncConnection>::establish(
            url.expose(),
        )
        .await;
    assert!(reconnect.is_err(), "server still up after drop");
}
