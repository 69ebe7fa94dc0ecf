//! Child processes in tests: reading their output, waiting for the API's address, stopping them.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

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

/// Waits (60 s at most) for the "API listening" line of a `payouts` child logging JSON on `log` (from
/// [`lines`]) and returns the address. Every line read is kept in `seen`; the test fails, showing them, if
/// the child exits or the deadline passes first.
pub fn api_addr(child: &mut Child, log: &Receiver<String>, seen: &mut Vec<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the server exited: {seen:#?}"
        );
        assert!(Instant::now() < deadline, "API never came up: {seen:#?}");
        let Ok(line) = log.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        seen.push(line.clone());
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if v["fields"]["message"] == "API listening" {
            return v["fields"]["addr"].as_str().unwrap().to_string();
        }
    }
}

/// Sends SIGTERM to `child` and waits for it to exit, killing it after `within`.
pub fn stop(child: &mut Child, within: Duration) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.wait();
}
