//! `payouts campaign upload|status`: a thin, streaming HTTP client of the running API.
//!
//! Why HTTP and not the database: the API owns everything that makes an upload safe — row validation, the
//! token's `ft_metadata.decimals` lookup (chain + cache), the approval threshold, and the exactly-once row
//! keys written in one DB transaction. A CLI that wrote rows itself would be a second implementation of
//! those rules, and would need the database's credentials on the operator's machine. So the CLI only streams
//! the file (never read whole into memory: [`FileBody`]), then prints the API's answer.
//!
//! The bearer token comes from `PAYOUTS_API_TOKEN` or `--token-file`, is held in [`ApiToken`] (which
//! redacts itself) and is never printed. Exit codes (see `payouts campaign upload --help`): 0 accepted,
//! 1 refused or failed ([`Refused`]), 2 usage or configuration ([`UsageError`], like a `ConfigError`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{ready, Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use serde_json::Value;
use tokio::io::{AsyncRead, ReadBuf};

use crate::cli::{ApiClientArgs, CampaignAction, FileFormat};
use crate::config::Config;

mod output;

pub use output::{status_summary, summary};

/// Row errors printed by the summary (the rest are counted).
pub const SHOWN_ERRORS: usize = 50;
/// Environment variable holding the API token.
pub const TOKEN_ENV: &str = "PAYOUTS_API_TOKEN";
/// Bytes read from the file per body frame.
const CHUNK: usize = 64 * 1024;

/// A usage problem: bad flags, no token, unreadable file. Exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The API answered, and refused (or a dry run found what a real upload would refuse). Exit status 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The API's bearer token; `Debug` never shows it.
struct ApiToken(String);

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

impl ApiToken {
    /// `--token-file` (first line), else `PAYOUTS_API_TOKEN`.
    fn load(file: Option<&Path>) -> Result<Self, UsageError> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                UsageError(format!(
                    "--token-file {}: cannot be read: {e}",
                    path.display()
                ))
            })?;
            let token = text.lines().next().unwrap_or("").trim();
            if token.is_empty() {
                return Err(UsageError(format!(
                    "--token-file {}: is empty",
                    path.display()
                )));
            }
            return Ok(Self(token.to_string()));
        }
        match std::env::var(TOKEN_ENV) {
            Ok(t) if !t.trim().is_empty() => Ok(Self(t.trim().to_string())),
            _ => Err(UsageError(format!(
                "no API token: set {TOKEN_ENV} or pass --token-file PATH"
            ))),
        }
    }
}

/// The API's base URL: `--api`, else `http://<api.listen>` from the configuration.
fn base_url(api: Option<&str>, config: Option<&Path>) -> anyhow::Result<String> {
    if let Some(url) = api {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(UsageError(format!("--api: `{url}` is not an http(s) URL")).into());
        }
        return Ok(url.trim_end_matches('/').to_string());
    }
    let config = Config::load(config)?;
    let mut addr = config.api.listen;
    // A server listening on every address is reached on loopback.
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(format!("http://{addr}"))
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: ApiToken,
}

impl Client {
    fn new(args: &ApiClientArgs, config: Option<&Path>) -> anyhow::Result<Self> {
        let token = ApiToken::load(args.token_file.as_deref())?;
        let base = base_url(args.api.as_deref(), config)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(args.timeout_secs.max(1)))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { http, base, token })
    }

    /// Sends `req` with the token; the status and the body parsed as JSON (`Value::String` when not JSON).
    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<(u16, String, Value)> {
        let resp = req
            .bearer_auth(&self.token.0)
            .send()
            .await
            .with_context(|| format!("no answer from the API at {}", self.base))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .with_context(|| format!("reading the API's answer (HTTP {status})"))?;
        let value = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
        Ok((status, text, value))
    }
}

/// Runs one `payouts campaign …` command.
pub async fn run(action: CampaignAction, config: Option<&Path>) -> anyhow::Result<()> {
    match action {
        CampaignAction::Upload {
            file,
            dry_run,
            skip_invalid,
            token,
            name,
            format,
            client,
        } => {
            let upload = Upload {
                format: file_format(&file, format)?,
                name: match name {
                    Some(n) => n,
                    None => default_name(&file)?,
                },
                file,
                dry_run,
                skip_invalid,
                token,
            };
            upload.run(&client, config).await
        }
        CampaignAction::Status { id, client } => status(id, &client, config).await,
    }
}

struct Upload {
    file: PathBuf,
    format: FileFormat,
    name: String,
    dry_run: bool,
    skip_invalid: bool,
    token: Option<String>,
}

impl Upload {
    async fn run(self, args: &ApiClientArgs, config: Option<&Path>) -> anyhow::Result<()> {
        let file = tokio::fs::File::open(&self.file)
            .await
            .map_err(|e| UsageError(format!("{}: cannot be opened: {e}", self.file.display())))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| UsageError(format!("{}: {e}", self.file.display())))?
            .len();
        let client = Client::new(args, config)?;
        let mut query: Vec<(&str, String)> = vec![("name", self.name.clone())];
        if let Some(t) = &self.token {
            query.push(("token", t.clone()));
        }
        if self.dry_run {
            query.push(("dry_run", "true".into()));
        }
        if self.skip_invalid {
            query.push(("skip_invalid", "true".into()));
        }
        let content_type = match self.format {
            FileFormat::Csv => "text/csv",
            FileFormat::Jsonl => "application/x-ndjson",
        };
        let req = client
            .http
            .post(format!("{}/campaigns", client.base))
            .query(&query)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(reqwest::Body::wrap(FileBody::new(file, size)));
        let (status, text, answer) = client.send(req).await?;
        if args.json {
            println!("{text}");
        }
        let is_report = answer.get("totals").is_some();
        if !is_report || (!(200..300).contains(&status) && status != 422) {
            return Err(refusal(status, &answer).into());
        }
        if !args.json {
            print!("{}", summary(&answer, self.dry_run));
        }
        let invalid = answer["totals"]["invalid"].as_u64().unwrap_or(0);
        if status == 422 {
            return Err(Refused(format!(
                "refused: {invalid} invalid rows, nothing was written (fix them, or pass --skip-invalid to \
                 store only the valid rows)"
            ))
            .into());
        }
        if self.dry_run && invalid > 0 && !self.skip_invalid {
            return Err(Refused(format!(
                "dry run: {invalid} invalid rows; the upload would be refused whole (add --skip-invalid to \
                 store only the valid rows)"
            ))
            .into());
        }
        Ok(())
    }
}

async fn status(id: i64, args: &ApiClientArgs, config: Option<&Path>) -> anyhow::Result<()> {
    if id <= 0 {
        return Err(UsageError("campaign id must be a positive whole number".into()).into());
    }
    let client = Client::new(args, config)?;
    let req = client.http.get(format!("{}/campaigns/{id}", client.base));
    let (status, text, answer) = client.send(req).await?;
    if status != 200 || answer.get("id").is_none() {
        return Err(refusal(status, &answer).into());
    }
    if args.json {
        println!("{text}");
    } else {
        print!("{}", status_summary(&answer));
    }
    Ok(())
}

/// The server's refusal as one line: its `{"error":{"code","message"}}`, or the start of whatever it sent.
fn refusal(status: u16, answer: &Value) -> Refused {
    let err = &answer["error"];
    if let (Some(code), Some(message)) = (err["code"].as_str(), err["message"].as_str()) {
        return Refused(format!("{message} (HTTP {status}, {code})"));
    }
    let shown: String = match answer {
        Value::String(s) => s.chars().take(200).collect(),
        other => other.to_string().chars().take(200).collect(),
    };
    Refused(format!("the API answered HTTP {status}: {shown}"))
}

/// `--format`, else the extension.
fn file_format(file: &Path, format: Option<FileFormat>) -> Result<FileFormat, UsageError> {
    if let Some(f) = format {
        return Ok(f);
    }
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("csv") => Ok(FileFormat::Csv),
        Some("jsonl" | "ndjson") => Ok(FileFormat::Jsonl),
        _ => Err(UsageError(format!(
            "{}: cannot tell the format from the extension (.csv, .jsonl, .ndjson); pass --format csv|jsonl",
            file.display()
        ))),
    }
}

fn default_name(file: &Path) -> Result<String, UsageError> {
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| UsageError(format!("{}: not a file name; pass --name", file.display())))
}

/// A file as a request body, read [`CHUNK`] bytes at a time: exact length (so the request carries a
/// `Content-Length`), never more than that many bytes held.
struct FileBody {
    file: tokio::fs::File,
    buf: Box<[u8]>,
    remaining: u64,
}

impl FileBody {
    fn new(file: tokio::fs::File, len: u64) -> Self {
        Self {
            file,
            buf: vec![0; CHUNK].into_boxed_slice(),
            remaining: len,
        }
    }
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining).map_or(CHUNK, |r| r.min(CHUNK));
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        ready!(Pin::new(&mut this.file).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        if n == 0 {
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file got shorter while it was being uploaded",
            ))));
        }
        this.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(rb.filled())))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::output::token_units;
    use super::*;

    #[test]
    fn token_units_are_exact() {
        assert_eq!(token_units("12500000", 6).as_deref(), Some("12.5"));
        assert_eq!(
            token_units("1", 24).as_deref(),
            Some("0.000000000000000000000001")
        );
        assert_eq!(token_units("0", 24).as_deref(), Some("0"));
        assert_eq!(token_units("1000", 0).as_deref(), Some("1000"));
        assert_eq!(token_units("007", 2).as_deref(), Some("0.07"));
        assert_eq!(
            token_units("340282366920938463463374607431768211455", 24).as_deref(),
            Some("340282366920938.463463374607431768211455")
        );
        assert_eq!(token_units("-1", 6), None);
        assert_eq!(token_units("1.5", 6), None);
        assert_eq!(token_units("", 6), None);
    }

    #[test]
    fn format_from_extension_or_flag() {
        let f = |p: &str| file_format(Path::new(p), None).ok();
        assert_eq!(f("a.csv"), Some(FileFormat::Csv));
        assert_eq!(f("a.CSV"), Some(FileFormat::Csv));
        assert_eq!(f("a.jsonl"), Some(FileFormat::Jsonl));
        assert_eq!(f("a.ndjson"), Some(FileFormat::Jsonl));
        assert_eq!(f("a.txt"), None);
        assert_eq!(
            file_format(Path::new("a.txt"), Some(FileFormat::Jsonl)).ok(),
            Some(FileFormat::Jsonl)
        );
    }

    #[test]
    fn summary_lists_fifty_errors_then_counts_the_rest() {
        let errors: Vec<Value> = (0..60)
            .map(|i| serde_json::json!({"row": i + 2, "field": "amount", "reason": "not a number"}))
            .collect();
        let answer = serde_json::json!({
            "dry_run": true, "token": "token.devnet", "approval_required": false,
            "totals": {"rows": 100, "valid": 40, "invalid": 60, "amount": "12500000"},
            "decimals": 6, "symbol": "FT",
            "errors": errors, "errors_truncated": false, "campaign": null, "inserted": 0
        });
        let s = summary(&answer, true);
        assert!(s.contains("100 (40 valid, 60 invalid)"), "{s}");
        assert!(s.contains("12500000 (smallest unit) = 12.5 FT"), "{s}");
        assert!(s.contains("row 51 amount: not a number"), "{s}");
        assert!(!s.contains("row 52 amount"), "{s}");
        assert!(s.contains("… and 10 more"), "{s}");
    }

    #[test]
    fn status_shows_progress_by_claim_status() {
        let c = serde_json::json!({
            "id": 7, "name": "drop", "kind": "file", "token": "token.devnet", "status": "running",
            "approval_required": true, "created_by": "ops", "created_at": "2026-12-04T21:00:00Z",
            "approved_by": "lead", "approved_at": "2026-12-04T21:05:00Z",
            "rows_total": 5, "rows_invalid": 1, "rows_valid": 4, "rows_paid": 1,
            "amount_total": "4000", "paid_total": "1000", "failed": 1,
            "claims": {"held": 0, "pending": 1, "submitted": 1, "confirmed": 1, "failed": 1}
        });
        let s = status_summary(&c);
        assert!(
            s.contains("campaign 7 `drop`: running (token token.devnet"),
            "{s}"
        );
        assert!(s.contains("approved by lead"), "{s}");
        assert!(s.contains("claims:     1 of 4 paid (25%)"), "{s}");
        assert!(
            s.contains("pending 1, submitted 1, confirmed 1, failed 1"),
            "{s}"
        );
        assert!(s.contains("failures.csv"), "{s}");
    }

    #[test]
    fn refusal_shows_the_servers_message() {
        let answer =
            serde_json::json!({"error": {"code": "campaign_name_taken", "message": "taken"}});
        assert_eq!(
            refusal(409, &answer).0,
            "taken (HTTP 409, campaign_name_taken)"
        );
        assert_eq!(
            refusal(502, &Value::String("bad gateway".into())).0,
            "the API answered HTTP 502: bad gateway"
        );
    }

    #[test]
    fn token_debug_is_redacted() {
        assert_eq!(format!("{:?}", ApiToken("secret".into())), "ApiToken(***)");
    }
}
