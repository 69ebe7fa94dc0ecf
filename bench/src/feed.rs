//! What the run feeds in: claims inserted straight into the database, or one campaign uploaded through
//! the API; and the local webhook receiver with the worker delivering to it (`--webhook`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use payouts_store::claims::{insert_claims, NewClaim};
use payouts_store::testdb::TestDb;
use payouts_store::{PgPool, Yocto};
use tokio_util::sync::CancellationToken;

use crate::api_child::ApiServer;
use crate::args::WebhookMode;
use crate::campaign_upload::{api_limits, write_csv};
use crate::receivers::Receivers;

pub(crate) async fn feed(
    pool: &PgPool,
    receivers: Receivers,
    from: u64,
    n: u64,
) -> anyhow::Result<()> {
    let rows: Vec<NewClaim> = (from..from + n)
        .map(|i| {
            let user = receivers.of(i);
            NewClaim::manual(
                &format!("bench-{i}"),
                "d",
                "token.devnet",
                &user,
                Yocto(1 + u128::from(i % 1000)),
                None,
            )
        })
        .collect();
    let mut conn = payouts_store::get(pool).await?;
    for chunk in rows.chunks(5_000) {
        insert_claims(&mut conn, chunk).await?;
    }
    Ok(())
}

/// The backlog as one campaign: an N-row CSV (row `i` pays `receivers.of(i)`) uploaded with the real CLI to
/// a `payouts api` on the bench's database; the API stops once the rows are stored. Returns when the upload
/// ended (the claims are visible to the distributor from then on).
pub(crate) async fn feed_campaign(
    db: &TestDb,
    rpc: &str,
    receivers: Receivers,
    n: u64,
) -> anyhow::Result<Instant> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("campaign.csv");
    let bytes = write_csv(&file, n, |i| receivers.of(i))?;
    let server =
        ApiServer::start(dir.path(), db.url().expose(), rpc, &api_limits(bytes, n)).await?;
    let up = server.upload(&file, &["--name", "bench campaign"]).await?;
    let done = Instant::now();
    server.stop().await?;
    anyhow::ensure!(
        up.code == 0 && up.answer["inserted"].as_u64() == Some(n),
        "campaign upload failed (exit {}): {}{}",
        up.code,
        up.stderr,
        up.answer
    );
    println!(
        "campaign:             {n} rows uploaded and stored in {:.1} s ({:.0} rows/s, payouts campaign upload → payouts api)",
        up.elapsed.as_secs_f64(),
        n as f64 / up.elapsed.as_secs_f64().max(1e-9)
    );
    Ok(done)
}

pub(crate) type WebhookRun = (
    payouts_webhooks::receiver::Receiver,
    Arc<payouts_webhooks::WebhookMetrics>,
    tokio::task::JoinHandle<Result<(), payouts_webhooks::WebhookError>>,
);

/// A local receiver and the webhook worker delivering every event type to it.
pub(crate) async fn start_webhooks(
    pool: &PgPool,
    mode: WebhookMode,
    stop: CancellationToken,
) -> anyhow::Result<WebhookRun> {
    use payouts_webhooks::receiver::{Mode, Receiver};
    use payouts_webhooks::{EndpointConfig, EventType, WebhookMetrics, Webhooks, WebhooksConfig};
    const ENV: &str = "PAYOUTS_BENCH_WEBHOOK_SECRET";
    let secret = format!("bench-{:032x}", rand::random::<u128>());
    std::env::set_var(ENV, &secret);
    let rx_mode = match mode {
        WebhookMode::Ok => Mode::Accept,
        WebhookMode::Hang => Mode::Hang,
    };
    let receiver = Receiver::start(([127, 0, 0, 1], 0).into(), secret.as_bytes(), rx_mode).await?;
    let cfg = WebhooksConfig {
        endpoints: vec![EndpointConfig {
            name: "bench".into(),
            url: receiver.url(),
            secret_env: ENV.into(),
            events: EventType::ALL.to_vec(),
            max_in_flight: 1,
        }],
        ..WebhooksConfig::default()
    };
    let metrics = Arc::new(WebhookMetrics::default());
    let worker = Webhooks::new(pool.clone(), cfg, metrics.clone())?;
    let task = tokio::spawn(worker.run(stop));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut conn = payouts_store::get(pool).await?;
        if !payouts_store::webhooks::endpoint_summaries(&mut conn)
            .await?
            .is_empty()
        {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "webhook endpoint not registered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok((receiver, metrics, task))
}
