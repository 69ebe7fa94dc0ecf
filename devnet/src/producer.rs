//! The block producer task: one block every `block_time_ms` (+ the `block_delay_ms` fault
//! knob), and, when `lake_dir` is set, the Lake S3 layout files of each block that becomes final.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::chain::Block;
use crate::shared::{now_ns, Shared};

pub(crate) async fn run(shared: Arc<Shared>) {
    let block_time = Duration::from_millis(shared.cfg.block_time_ms.max(1));
    let mut stop = shared.stop.subscribe();
    let mut next = Instant::now() + block_time;
    loop {
        let delay = Duration::from_millis(shared.faults.lock().faults().block_delay_ms);
        tokio::select! {
            _ = tokio::time::sleep_until(next + delay) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let (block, newly_final) = {
            let mut chain = shared.chain.lock();
            let block = chain.produce_block(now_ns());
            (block, chain.final_block().clone())
        };
        tracing::trace!(
            height = block.height,
            gas = block.gas_used,
            "block produced"
        );
        shared.head.send_replace(block.height);
        if let Some(dir) = shared.cfg.lake_dir.clone() {
            let result = tokio::task::spawn_blocking(move || write_lake(&dir, &newly_final)).await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(%err, "cannot write lake files"),
                Err(err) => tracing::warn!(%err, "lake writer task failed"),
            }
        }
        next = (next + block_time).max(Instant::now());
    }
}

/// Writes `{height:012}/shard_0.json` and `{height:012}/block.json`, each whole or not at all (as an S3 PUT
/// is): written to a temporary name in the folder, then renamed, so a reader never sees half a file.
pub(crate) fn write_lake(dir: &Path, block: &Block) -> std::io::Result<()> {
    let folder = dir.join(format!("{:012}", block.height));
    std::fs::create_dir_all(&folder)?;
    let put = |name: &str, bytes: &[u8]| {
        let tmp = folder.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, folder.join(name))
    };
    put("shard_0.json", &serde_json::to_vec(&block.shard())?)?;
    put("block.json", &block.header_json())
}
