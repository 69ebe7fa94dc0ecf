use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One JSON-RPC call over a plain socket; `None` while nothing listens yet.
fn rpc(port: u16, body: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn payouts_devnet_serves_rpc_and_stops_on_sigterm() {
    let port = free_port();
    let keys = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_payouts"))
        .arg("devnet")
        .current_dir(keys.path())
        .env("PAYOUTS_DEVNET__LISTEN", format!("127.0.0.1:{port}"))
        .env("PAYOUTS_DEVNET__BLOCK_TIME_MS", "50")
        .env("PAYOUTS_DEVNET__KEY_DIR", keys.path())
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(answer) = rpc(
            port,
            r#"{"jsonrpc":"2.0","id":"1","method":"status","params":[]}"#,
        ) {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "devnet never answered on port {port}"
        );
        assert!(child.try_wait().unwrap().is_none(), "devnet exited early");
        std::thread::sleep(Duration::from_millis(50));
    };
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
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(exit.success(), "exit {exit:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}
