use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use payouts_store::migrate::{run_migrations, Direction};
use payouts_store::testdb::TestDb;

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn tables(db: &TestDb) -> Vec<String> {
    let mut conn = db.conn().await;
    let mut names: Vec<String> = diesel::sql_query(
        "SELECT table_name AS name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'",
    )
    .load::<Name>(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect();
    names.sort();
    names
}

#[tokio::test]
async fn up_down_up_on_a_fresh_database() {
    let db = TestDb::empty().await;
    let cfg = db.config();
    let applied = run_migrations(&cfg, Direction::Up).await.unwrap();
    assert_eq!(applied.len(), 15, "{applied:?}");
    assert_eq!(
        tables(&db).await,
        [
            "access_keys",
            "campaigns",
            "claims",
            "daily_spend",
            "distributor_status",
            "incidents",
            "indexer_cursor",
            "indexer_stalls",
            "key_transactions",
            "transactions",
            "webhook_deliveries",
            "webhook_endpoints"
        ]
    );

    let reverted = run_migrations(&cfg, Direction::DownAll).await.unwrap();
    assert_eq!(reverted.len(), applied.len());
    assert!(tables(&db).await.is_empty());

    assert_eq!(run_migrations(&cfg, Direction::Up).await.unwrap(), applied);
    assert_eq!(tables(&db).await.len(), 12);
    // Running again is a no-op.
    assert!(run_migrations(&cfg, Direction::Up)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn schema_module_matches_the_database() {
    use diesel::{QueryDsl, SelectableHelper};
    use payouts_store::claims::Claim;
    use payouts_store::schema::{access_keys, claims, indexer_cursor, transactions};
    use payouts_store::transactions::StoredTx;
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    // Selecting every declared column fails if any is missing or mistyped.
    claims::table
        .select(Claim::as_select())
        .load::<Claim>(&mut conn)
        .await
        .unwrap();
    transactions::table
        .select(StoredTx::as_select())
        .load::<StoredTx>(&mut conn)
        .await
        .unwrap();
    payouts_store::status::list_status(&mut conn).await.unwrap();
    payouts_store::incidents::list_incidents(&mut conn, false, 1)
        .await
        .unwrap();
    payouts_store::key_txs::key_txs_of(&mut conn, "k")
        .await
        .unwrap();
    access_keys::table
        .count()
        .get_result::<i64>(&mut conn)
        .await
        .unwrap();
    indexer_cursor::table
        .count()
        .get_result::<i64>(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn amounts_must_be_positive_and_fit_numeric_39() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let insert = |amount: &str| {
        format!(
            "INSERT INTO claims (source, idempotency_key, token_contract, receiver_id, amount) \
             VALUES ('manual', 'k{}', 'token.devnet', 'bob.devnet', {amount})",
            amount.len()
        )
    };
    // (Fractions never reach SQL: `Yocto` is a u128 and its parser rejects them.)
    for bad in ["0", "-1", &"9".repeat(40)] {
        assert!(
            diesel::sql_query(insert(bad))
                .execute(&mut conn)
                .await
                .is_err(),
            "{bad} accepted"
        );
    }
    diesel::sql_query(insert(&u128::MAX.to_string()))
        .execute(&mut conn)
        .await
        .unwrap();
    let n: Vec<Count> = diesel::sql_query("SELECT count(*) AS n FROM claims")
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(n[0].n, 1);
}

#[tokio::test]
async fn oldest_pending_per_token_is_an_index_scan() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    // Enough rows, and fresh statistics, that the planner would pick a seq scan without the index.
    diesel::sql_query(
        "INSERT INTO claims (source, idempotency_key, token_contract, receiver_id, amount, status) \
         SELECT 'manual', 'k' || g, 't' || (g % 20) || '.devnet', 'bob.devnet', 1, \
                CASE WHEN g % 10 = 0 THEN 'pending' ELSE 'failed' END \
         FROM generate_series(1, 20000) g",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query("ANALYZE claims")
        .execute(&mut conn)
        .await
        .unwrap();
    let plan: Vec<String> = diesel::sql_query(
        "EXPLAIN SELECT * FROM claims WHERE status = 'pending' AND token_contract = 't3.devnet' \
         ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED",
    )
    .load::<PlanLine>(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|l| l.plan)
    .collect();
    assert!(
        plan.iter().any(|l| l.contains("claims_pending_by_token")),
        "plan: {plan:#?}"
    );
    assert!(
        !plan.iter().any(|l| l.contains("Seq Scan")),
        "plan: {plan:#?}"
    );
}

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    plan: String,
}
