//! What is taken every second of a run (claim counts, confirmations per second and their moving average), the
//! 10-second windows "sustained" is read from, and the progress bar that shows it.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use payouts_store::claims::count_by_status;
use payouts_store::{ClaimStatus, PgPool};
use serde::{Deserialize, Serialize};

/// Claim counts at one moment (the database is the run's own: every claim in it is the run's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) confirmed: i64,
    /// pending + submitted
    pub(crate) open: i64,
    pub(crate) failed: i64,
}

pub(crate) async fn counts(pool: &PgPool) -> anyhow::Result<Counts> {
    let mut conn = payouts_store::get(pool).await?;
    let c = count_by_status(&mut conn).await?;
    let get = |s: ClaimStatus| c.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n);
    Ok(Counts {
        confirmed: get(ClaimStatus::Confirmed),
        open: get(ClaimStatus::Pending) + get(ClaimStatus::Submitted),
        failed: get(ClaimStatus::Failed),
    })
}

/// Samples in the trailing moving average (one a second: 10 s).
pub(crate) const MOVING_AVERAGE_SAMPLES: usize = 10;
/// Length of the windows "sustained" is read from.
pub(crate) const WINDOW_SECS: f64 = 10.0;

/// One per-second sample of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t_s: f64,
    /// Claims fed so far.
    pub fed: u64,
    /// Claims confirmed so far.
    pub confirmed: i64,
    /// Claims pending or submitted.
    pub open: i64,
    /// Claims failed for good.
    pub failed: i64,
    /// Confirmations per second since the previous sample.
    pub per_s: f64,
    /// Confirmations per second over the trailing 10 samples (10 s).
    pub avg10_per_s: f64,
}

/// Confirmations per second between two samples (0 when no time passed).
pub(crate) fn rate_between(a: &Sample, b: &Sample) -> f64 {
    let dt = b.t_s - a.t_s;
    if dt > 0.0 {
        (b.confirmed - a.confirmed) as f64 / dt
    } else {
        0.0
    }
}

/// Fills `per_s` and `avg10_per_s` of sample `i` from the samples before it.
pub(crate) fn fill_rates_at(samples: &mut [Sample], i: usize, window: usize) {
    let (per_s, avg) = match i {
        0 => (0.0, 0.0),
        _ => (
            rate_between(&samples[i - 1], &samples[i]),
            rate_between(&samples[i.saturating_sub(window)], &samples[i]),
        ),
    };
    samples[i].per_s = per_s;
    samples[i].avg10_per_s = avg;
}

/// Fills `per_s` and the moving average (over `window` samples) of every sample.
pub(crate) fn fill_rates(samples: &mut [Sample], window: usize) {
    for i in 0..samples.len() {
        fill_rates_at(samples, i, window);
    }
}

/// Confirmations per second in consecutive, non-overlapping windows of `window_s` seconds that end by
/// `until_s`; a last partial window is left out.
pub(crate) fn window_rates(samples: &[Sample], window_s: f64, until_s: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let Some(mut start) = samples.first() else {
        return out;
    };
    for s in samples {
        if s.t_s > until_s + 0.5 {
            break;
        }
        // Samples come about a second apart; a window closes at the first sample `window_s` (±½ s) later.
        if s.t_s - start.t_s >= window_s - 0.5 {
            out.push(rate_between(start, s));
            start = s;
        }
    }
    out
}

/// The per-second samples of a run.
pub(crate) struct Sampler {
    started: Instant,
    pub(crate) samples: Vec<Sample>,
}

impl Sampler {
    pub(crate) fn new(started: Instant) -> Self {
        Sampler {
            started,
            samples: vec![Sample::default()],
        }
    }

    pub(crate) async fn take(&mut self, pool: &PgPool, fed: u64) -> anyhow::Result<Sample> {
        let c = counts(pool).await?;
        self.samples.push(Sample {
            t_s: self.started.elapsed().as_secs_f64(),
            fed,
            confirmed: c.confirmed,
            open: c.open,
            failed: c.failed,
            ..Sample::default()
        });
        let i = self.samples.len() - 1;
        fill_rates_at(&mut self.samples, i, MOVING_AVERAGE_SAMPLES);
        Ok(self.samples[i])
    }
}

/// The progress bar: drawn on stderr, and only when stdout is a terminal (piped output stays the report).
pub(crate) fn progress_bar(len: u64, template: &str) -> ProgressBar {
    use std::io::IsTerminal;
    let target = if std::io::stdout().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// 30 s: 100 confirmations a second for 20 s, then none; one sample a second from t = 0.
    pub(crate) fn series() -> Vec<Sample> {
        let mut s: Vec<Sample> = (0..=30)
            .map(|t| Sample {
                t_s: t as f64,
                fed: 2_000,
                confirmed: 100 * t.min(20),
                open: 2_000 - 100 * t.min(20),
                failed: 0,
                ..Sample::default()
            })
            .collect();
        fill_rates(&mut s, MOVING_AVERAGE_SAMPLES);
        s
    }

    #[test]
    fn per_second_rates_and_moving_average() {
        let s = series();
        assert_eq!(s[0].per_s, 0.0);
        assert_eq!(s[0].avg10_per_s, 0.0);
        assert!(s[1..=20].iter().all(|x| x.per_s == 100.0));
        assert!(s[21..].iter().all(|x| x.per_s == 0.0));
        // The first samples average over what there is; then over the trailing 10 s.
        assert_eq!(s[5].avg10_per_s, 100.0);
        assert_eq!(s[20].avg10_per_s, 100.0);
        assert_eq!(s[25].avg10_per_s, 50.0);
        assert_eq!(s[30].avg10_per_s, 0.0);
        // The incremental fill (during the run) agrees with the whole-series one.
        let mut inc = s.clone();
        for x in &mut inc {
            x.per_s = -1.0;
            x.avg10_per_s = -1.0;
        }
        for i in 0..inc.len() {
            fill_rates_at(&mut inc, i, MOVING_AVERAGE_SAMPLES);
        }
        assert_eq!(inc, s);
        // Uneven spacing: a rate is per second, not per sample.
        let mut two = vec![
            Sample::default(),
            Sample {
                t_s: 2.0,
                confirmed: 300,
                ..Sample::default()
            },
        ];
        fill_rates(&mut two, MOVING_AVERAGE_SAMPLES);
        assert_eq!(two[1].per_s, 150.0);
    }

    #[test]
    fn ten_second_windows() {
        let s = series();
        assert_eq!(window_rates(&s, WINDOW_SECS, 20.0), vec![100.0, 100.0]);
        assert_eq!(window_rates(&s, WINDOW_SECS, 30.0), vec![100.0, 100.0, 0.0]);
        // A last partial window is left out.
        assert_eq!(
            window_rates(&s[..26], WINDOW_SECS, 30.0),
            vec![100.0, 100.0]
        );
        assert!(window_rates(&[], WINDOW_SECS, 30.0).is_empty());
    }
}
