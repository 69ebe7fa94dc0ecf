//! A one-line progress display on stderr for `payouts replay` (drawn only when stderr is a terminal, at most
//! five times a second), so the production binary needs no progress-bar crate.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Progress through `len` steps.
pub struct Progress {
    len: u64,
    started: Instant,
    last_draw: Option<Instant>,
    enabled: bool,
}

impl Progress {
    /// Starts counting (and drawing, when stderr is a terminal).
    pub fn new(len: u64) -> Self {
        Progress {
            len,
            started: Instant::now(),
            last_draw: None,
            enabled: std::io::stderr().is_terminal(),
        }
    }

    /// `pos` of `len` steps done.
    pub fn set_position(&mut self, pos: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self
            .last_draw
            .is_some_and(|t| now.duration_since(t) < Duration::from_millis(200))
            && pos < self.len
        {
            return;
        }
        self.last_draw = Some(now);
        let secs = self.started.elapsed().as_secs_f64();
        let per_sec = if secs > 0.0 { pos as f64 / secs } else { 0.0 };
        let eta = if per_sec > 0.0 {
            format!("{:.0} s", self.len.saturating_sub(pos) as f64 / per_sec)
        } else {
            "-".to_string()
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{pos}/{} blocks {per_sec:.0}/s eta {eta}",
            self.len
        );
        let _ = err.flush();
    }

    /// Clears the line.
    pub fn finish_and_clear(&self) {
        if self.enabled && self.last_draw.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}
