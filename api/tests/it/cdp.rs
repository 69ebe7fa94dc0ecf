//! A minimal Chrome DevTools Protocol client: launches Debian's headless Chromium with a fresh profile and no
//! background networking, attaches to one page over the DevTools WebSocket, and offers navigate / evaluate /
//! type / screenshot. Untyped JSON on purpose: it does not break when Chromium adds protocol fields.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Where Debian's `chromium` package puts the browser; `CHROMIUM` overrides.
pub fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

pub struct Browser {
    _child: Child,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium and opens one page of `width` × `height` CSS pixels.
    pub async fn launch(width: u32, height: u32) -> Browser {
        let path = chromium_path();
        assert!(
            path.is_file(),
            "headless Chromium not found at {}: install Debian's package (`apt-get update && apt-get install -y chromium`; \
             .ci/run does this) or set CHROMIUM to its path",
            path.display()
        );
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(&path)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        let ws_url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(i) = line.find("ws://") {
                    return Some(line[i..].trim().to_string());
                }
                seen.push(line);
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            panic!(
                "Chromium did not print its DevTools URL; its output:\n{}",
                seen.join("\n")
            )
        });
        // Keep draining stderr so Chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let (ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .unwrap_or_else(|e| panic!("connecting to Chromium's DevTools at {ws_url}: {e}"));
        let mut b = Browser {
            _child: child,
            ws,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let target = b
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = b
            .call(
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await;
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        b.call("Page.enable", json!({})).await;
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
        b
    }

    /// Sends a command (to the page once attached) and waits for its answer, skipping events.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(frame) = self.ws.next().await {
                let frame = frame.unwrap_or_else(|e| panic!("DevTools connection: {e}"));
                let Ok(text) = frame.to_text() else { continue };
                let Ok(v) = serde_json::from_str::<Value>(text) else {
                    continue;
                };
                if v["id"].as_u64() == Some(id) {
                    return Some(v);
                }
            }
            None
        })
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} within 30 s"))
        .unwrap_or_else(|| panic!("DevTools connection closed during {method}"));
        if let Some(err) = answer.get("error") {
            panic!("{method} failed: {err}");
        }
        answer["result"].clone()
    }

    /// Loads `url` (returns once the navigation is committed; poll the page for what you need).
    pub async fn navigate(&mut self, url: &str) {
        let r = self.call("Page.navigate", json!({"url": url})).await;
        assert!(r.get("errorText").is_none(), "navigating to {url}: {r}");
    }

    /// Evaluates `expr` in the page and returns its value (promises awaited); a thrown exception panics.
    pub async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("evaluating `{expr}` threw: {ex}");
        }
        r["result"]["value"].clone()
    }

    /// Focuses the element with `id` and types `text` into it as a user would (input events fire).
    pub async fn type_into(&mut self, id: &str, text: &str) {
        self.eval(&format!(
            "(() => {{ const e = document.getElementById({id:?}); e.focus(); e.select && e.select(); return true; }})()"
        ))
        .await;
        self.call("Input.insertText", json!({"text": text})).await;
    }

    /// Puts the files at `paths` into the file input with `id`, as a user picking them would (the page sees
    /// `input` and `change` events and reads the files from disk).
    pub async fn set_files(&mut self, id: &str, paths: &[&Path]) {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": format!("document.getElementById({id:?})"), "returnByValue": false}),
            )
            .await;
        let object = r["result"]["objectId"]
            .as_str()
            .unwrap_or_else(|| panic!("no element #{id}: {r}"))
            .to_string();
        let files: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        self.call(
            "DOM.setFileInputFiles",
            json!({"files": files, "objectId": object}),
        )
        .await;
    }

    /// Lets the page save downloads into `dir` (headless Chromium refuses them by default), under the name
    /// the page suggests.
    pub async fn allow_downloads(&mut self, dir: &Path) {
        // A browser-wide command: sent to the browser, not to the page's session.
        let session = std::mem::take(&mut self.session);
        self.call(
            "Browser.setDownloadBehavior",
            json!({"behavior": "allow", "downloadPath": dir.display().to_string()}),
        )
        .await;
        self.session = session;
    }

    /// Clicks the element with `id` with a real mouse event at its centre.
    pub async fn click(&mut self, id: &str) {
        let r = self
            .eval(&format!(
                "(() => {{ const e = document.getElementById({id:?}); e.scrollIntoView({{block: 'center'}}); \
                 const b = e.getBoundingClientRect(); return [b.x + b.width / 2, b.y + b.height / 2]; }})()"
            ))
            .await;
        let (x, y) = (r[0].as_f64().unwrap(), r[1].as_f64().unwrap());
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await;
        }
    }

    /// Saves a PNG of the full page.
    pub async fn screenshot(&mut self, path: &Path) {
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}
