use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

/// One JSON-RPC call over a plain socket.
fn rpc(addr: &str, body: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let req = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn payouts_devnet_serves_rpc_and_stops_on_sigterm() {
    let keys = tempfile::tempdir().unwrap();
    // Port 0: the devnet binds a free port itself and logs the address it got.
    let mut child = Command::new(env!("CARGO_BIN_EXE_payouts"))
        .arg("devnet")
        .current_dir(keys.path())
        .env("PAYOUTS_DEVNET__LISTEN", "127.0.0.1:0")
        .env("PAYOUTS_DEVNET__BLOCK_TIME_MS", "50")
        .env("PAYOUTS_DEVNET__KEY_DIR", keys.path())
        .env("PAYOUTS_LOG__FORMAT", "json")
        .env("RUST_LOG", "info")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = crate::child::lines(child.stderr.take().unwrap());
    let mut err = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let line = match lines.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                assert!(
                    Instant::now() < deadline,
                    "devnet never said where it listens: {err:?}"
                );
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "devnet exited early: {err:?}"
                );
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => panic!("devnet closed stderr: {err:?}"),
        };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        err.push(line);
        if v["fields"]["message"] == "devnet listening" {
            let url = v["fields"]["rpc"].as_str().unwrap().to_string();
            break url.trim_start_matches("http://").to_string();
        }
    };
    let status = rpc(
        &addr,
        r#"{"jsonrpc":"2.0","id":"1","method":"status","params":[]}"#,
    )
    .unwrap_or_else(|e| panic!("no answer from the devnet at {addr}: {e}"));
    assert!(
        status.contains("200 OK") && status.contains("\"chain_id\""),
        "{status}"
    );
    assert!(
        keys.path().join("treasury.devnet-0.json").is_file(),
        "treasury key file written"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        assert!(Instant::now() < deadline, "devnet did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    // The child has exited: its stderr ends, and with it the reader.
    err.extend(lines.iter());
    let err = err.join("\n");
    assert!(exit.success(), "exit {exit:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}
