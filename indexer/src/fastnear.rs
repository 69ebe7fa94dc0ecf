//! The fastnear source: near-lake-framework's FastNear provider, fetching several stretches of a backlog at
//! once.
//!
//! The provider fetches with `num_threads` tasks, but a task holding a block that is not next in line polls
//! with `sleep(distance in ms)` until it is: however many tasks run, a backlog moves at most about one block
//! per millisecond, and on a fast endpoint (the local devnet answers in well under a millisecond) fewer
//! than one: measured on the devnet, 1 task moved ~1,100 blocks/s, 2 to 8 tasks ~560-620 blocks/s. With one
//! task it never sleeps, but then it parses one block at a time (JSON to `StreamerMessage`, ~0.45 ms a block
//! of the devnet's), on one core.
//!
//! So while the stream is more than two segments behind the final head (or behind the end of a replayed
//! range), it runs `concurrency` streamers of one task each side by side, every one on a consecutive
//! segment of heights, on its own thread, and delivers the segments in order. Each is an ordinary
//! near-lake-framework streamer: same requests, same parsing, same skipping of missing heights. Close to
//! the head it hands over to one streamer for good. A distant source (a public neardata endpoint, tens of
//! milliseconds a request: see [`DISTANT`]) is latency-bound, not CPU-bound: there the framework's own
//! `num_threads` streamer fetches side by side from the start.

use std::collections::VecDeque;

use near_lake_framework::fastnear::fetchers::fetch_block_by_finality;
use near_lake_framework::near_indexer_primitives::types::Finality;
use near_lake_framework::near_indexer_primitives::StreamerMessage;
use near_lake_framework::{FastNearClient, FastNearConfig, FastNearConfigBuilder};
use tokio::sync::{mpsc, oneshot};

/// Fewest blocks in one segment. Each segment starts a streamer of its own, and the framework builds a
/// reqwest client for each: with the native-tls backend it selects, that loads the system's CA bundle
/// through OpenSSL, ~93 ms of CPU on OpenSSL 3 (measured on the 2-core bench machine). So segments must
/// be long for that to be noise: with 25-block segments a devnet replay ran at ~300 blocks/s, with
/// 1,000-block segments the builds still took ~10 % of a replay's CPU. A catch-up is therefore cut into
/// `concurrency` segments of equal length (one streamer each, started side by side), never shorter
/// than this.
const SEGMENT: u64 = 1_000;

/// How the fastnear stream fetches.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Base URL (`https://mainnet.neardata.xyz`, the devnet's, ...).
    pub(crate) url: String,
    /// Streamers side by side while catching up (and `num_threads` of the one at the head).
    pub(crate) concurrency: u64,
    /// Blocks per segment.
    pub(crate) segment: u64,
    /// Blocks each running segment holds ahead (all of them together: about `preload`).
    pub(crate) buffer: usize,
    /// Channel size of the streamer at the head.
    pub(crate) preload: usize,
    /// Last block wanted, when known: nothing is fetched in segments past it.
    pub(crate) until: Option<u64>,
}

impl Plan {
    /// `preload` blocks ahead in all, split between `concurrency` segments.
    pub(crate) fn new(url: String, concurrency: u64, preload: usize, until: Option<u64>) -> Self {
        let concurrency = concurrency.max(1);
        let preload = preload.max(1);
        Self {
            url,
            concurrency,
            segment: SEGMENT,
            buffer: preload
                .div_ceil(usize::try_from(concurrency).unwrap_or(usize::MAX))
                .max(2),
            preload,
            until,
        }
    }
}

fn lake_config(
    url: &str,
    start: u64,
    threads: u64,
    preload: usize,
) -> Result<FastNearConfig, String> {
    FastNearConfigBuilder::default()
        .endpoint(url)
        .start_block_height(start)
        .num_threads(threads.max(1))
        .blocks_preload_pool_size(preload.max(1))
        .build()
        .map_err(|e| e.to_string())
}

/// A block source whose best of two `last_block` fetches takes longer than this is far away (a public
/// neardata endpoint answers in tens of milliseconds; the local devnet, parse included, in about one).
/// There a segment's single fetch task waits on the network nearly all the time, and only the segment in
/// front is drained while the others stop after `buffer` blocks: a catch-up would move at about one block
/// per round trip. The framework's own `num_threads` tasks, which fetch side by side and sleep a few
/// milliseconds at most to keep the order, move `concurrency` blocks per round trip instead, so a distant
/// source is streamed by one such streamer from the start.
const DISTANT: std::time::Duration = std::time::Duration::from_millis(10);

/// Whether the source is distant, and the final head height its last fetch saw.
async fn distant(client: &FastNearClient) -> (bool, u64) {
    let mut best = std::time::Duration::MAX;
    let mut head = 0;
    for _ in 0..2 {
        let started = std::time::Instant::now();
        head = fetch_block_by_finality(client, Finality::Final)
            .await
            .header
            .height;
        best = best.min(started.elapsed());
    }
    let distant = best > DISTANT;
    tracing::debug!(
        fetch_ms = best.as_secs_f64() * 1e3,
        distant,
        "timed the block source"
    );
    (distant, head)
}

/// What catching up ended with.
enum Flow {
    /// Every segment delivered; the highest height sent, if any.
    Done(Option<u64>),
    /// Nobody receives any more.
    Closed,
}

/// Streams from `from` on into `out`, in height order. Ends only on error or once `out` is closed.
pub(crate) async fn run(
    plan: Plan,
    from: u64,
    out: mpsc::Sender<StreamerMessage>,
) -> Result<(), String> {
    let mut next = from;
    let mut delivered = None;
    if plan.concurrency > 1 {
        let client = FastNearClient::new(plan.url.clone(), None);
        // Segments pay off only where fetching is not latency-bound (see `DISTANT`).
        let (far, head) = distant(&client).await;
        // The first round uses the head the timing fetches just saw.
        let mut known_head = Some(head);
        if !far {
            loop {
                if plan.until.is_some_and(|u| next > u) {
                    break;
                }
                let head = match known_head.take() {
                    Some(head) => head,
                    None => {
                        fetch_block_by_finality(&client, Finality::Final)
                            .await
                            .header
                            .height
                    }
                };
                let target = plan.until.map_or(head, |u| u.min(head));
                // Not worth splitting: the single streamer takes over.
                if target.saturating_add(1).saturating_sub(next) < 2 * plan.segment {
                    break;
                }
                match catch_up(&plan, next, target, &out).await? {
                    Flow::Closed => return Ok(()),
                    Flow::Done(last) => delivered = last.or(delivered),
                }
                next = target + 1;
            }
        }
    }
    if let (Some(until), Some(last)) = (plan.until, delivered) {
        if last >= until {
            // Everything wanted is delivered: fetch nothing more, end only when dropped.
            out.closed().await;
            return Ok(());
        }
    }
    let cfg = lake_config(&plan.url, next, plan.concurrency, plan.preload)?;
    forward(cfg, None, out).await
}

/// Streams `from..=to` as consecutive segments fetched side by side, delivered in order.
async fn catch_up(
    plan: &Plan,
    from: u64,
    to: u64,
    out: &mpsc::Sender<StreamerMessage>,
) -> Result<Flow, String> {
    // Only the segment in front is drained; the others fetch their first `buffer` blocks meanwhile and
    // wait. So one streamer per running slot for the whole range loses nothing, and starts the fewest.
    let span = to.saturating_sub(from).saturating_add(1);
    let length = plan.segment.max(span.div_ceil(plan.concurrency));
    tracing::debug!(
        from,
        to,
        streamers = plan.concurrency,
        segment = length,
        "catching up in segments"
    );
    let mut running: VecDeque<Segment> = VecDeque::new();
    let mut next = from;
    let mut last = None;
    loop {
        while running.len() < usize::try_from(plan.concurrency).unwrap_or(usize::MAX) && next <= to
        {
            let end = next.saturating_add(length - 1).min(to);
            running.push_back(Segment::start(&plan.url, next, end, plan.buffer)?);
            next = end + 1;
        }
        let Some(mut segment) = running.pop_front() else {
            return Ok(Flow::Done(last));
        };
        while let Some(msg) = segment.blocks.recv().await {
            let height = msg.block.header.height;
            if out.send(msg).await.is_err() {
                return Ok(Flow::Closed);
            }
            last = Some(height);
        }
        match segment.done.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("a fetch thread stopped".into()),
        }
    }
}

/// One segment: a near-lake-framework streamer of one task on a thread and runtime of its own, stopped
/// (runtime dropped, so its fetch task goes with it) once it has delivered `to` or gone past it.
struct Segment {
    blocks: mpsc::Receiver<StreamerMessage>,
    done: oneshot::Receiver<Result<(), String>>,
}

impl Segment {
    fn start(url: &str, from: u64, to: u64, buffer: usize) -> Result<Self, String> {
        let (tx, blocks) = mpsc::channel(buffer.max(1));
        let (done_tx, done) = oneshot::channel();
        let cfg = lake_config(url, from, 1, 2)?;
        std::thread::Builder::new()
            .name("lake-segment".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => {
                        let result = rt.block_on(forward(cfg, Some(to), tx));
                        let _ = done_tx.send(result);
                        drop(rt);
                    }
                    Err(e) => {
                        let _ = done_tx.send(Err(format!("cannot start a fetch runtime: {e}")));
                    }
                }
            })
            .map_err(|e| format!("cannot start a fetch thread: {e}"))?;
        Ok(Self { blocks, done })
    }
}

/// Runs a near-lake-framework streamer and passes its blocks on, up to `to` when given (a segment, on its
/// own runtime: returning ends `block_on`, so the framework's tasks are never polled again and are dropped
/// with the runtime), else for as long as anyone receives. Ends with an error only when the streamer does.
async fn forward(
    cfg: FastNearConfig,
    to: Option<u64>,
    tx: mpsc::Sender<StreamerMessage>,
) -> Result<(), String> {
    let (task, mut blocks) = near_lake_framework::streamer(cfg);
    loop {
        let msg = tokio::select! {
            _ = tx.closed() => return Ok(()),
            m = blocks.recv() => m,
        };
        let Some(msg) = msg else {
            return Err(match task.await {
                Ok(Ok(())) => "the streamer ended".into(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => format!("streamer task stopped: {e}"),
            });
        };
        let height = msg.block.header.height;
        // A missing height `to` shows as the next block: that one belongs to the next segment.
        if to.is_some_and(|to| height > to) {
            return Ok(());
        }
        if tx.send(msg).await.is_err() || to == Some(height) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use payouts_devnet::{Devnet, Faults};

    use super::*;

    /// A source ~30 ms away is recognised as distant and streamed by the framework's multi-task streamer:
    /// every height of the range arrives, once, in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_distant_source_streams_the_range_in_order() {
        let (devnet, _keys) = Devnet::start_for_tests(|_| {}).await.unwrap();
        assert!(
            devnet.wait_for_height(45, Duration::from_secs(60)).await,
            "the devnet reaches block 45"
        );
        devnet.set_faults(Faults {
            neardata_delay_ms: 30,
            ..devnet.faults()
        });
        let url = devnet.rpc_url();
        let client = FastNearClient::new(url.clone(), None);
        assert!(distant(&client).await.0);

        let (tx, mut rx) = mpsc::channel(16);
        let plan = Plan::new(url, 4, 16, Some(40));
        let task = tokio::spawn(run(plan, 2, tx));
        let mut heights = vec![];
        while heights.last() != Some(&40) {
            let msg = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("a block within 30 s")
                .expect("the stream goes on");
            heights.push(msg.block.header.height);
        }
        assert_eq!(heights, (2..=40).collect::<Vec<u64>>());
        drop(rx);
        task.abort();
        devnet.shutdown().await;
    }
}
