//! `cargo bench -p payouts-devnet --bench apply`: how many `ft_transfer` actions per second the
//! devnet applies with the gas limit lifted (batches of 100, signature checks included).
//! `DEVNET_BENCH_BATCHES` sets the number of batches (default 500 = 50,000 transfers).

fn main() {
    let batches = std::env::var("DEVNET_BENCH_BATCHES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let report = payouts_devnet::bench_apply(batches);
    println!(
        "devnet apply: {} ft_transfer actions in {} blocks, {:.3} s: {:.0} actions/s",
        report.actions,
        report.blocks,
        report.elapsed.as_secs_f64(),
        report.actions_per_second()
    );
}
