//! Reading a child process's output in tests.

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::{channel, Receiver};

/// Sends each line `output` gives (a child's piped stdout or stderr) on the returned channel, from a thread
/// of its own, so a test can wait for a line with a deadline (`recv_timeout`). The channel disconnects when
/// the output closes.
pub fn lines(output: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            // Keeps draining when nobody listens any more, so the child never blocks on a full pipe.
            let _ = tx.send(line);
        }
    });
    rx
}
