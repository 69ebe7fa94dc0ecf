//! What `payouts campaign` prints: the upload summary (totals, approval, chain checks, the first
//! [`SHOWN_ERRORS`](super::SHOWN_ERRORS) row errors) and a campaign's status, amounts in token units when the
//! answer gives the decimals.

use serde_json::Value;

use super::SHOWN_ERRORS;

/// `amount` (decimal digits, smallest unit) in token units with `decimals` places, trailing zeros dropped:
/// exact, no floats. `None` when `amount` is not a whole number.
pub fn token_units(amount: &str, decimals: u32) -> Option<String> {
    if amount.is_empty() || !amount.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = amount.trim_start_matches('0');
    let d = decimals as usize;
    let padded = format!("{digits:0>width$}", width = d + 1);
    let (whole, frac) = padded.split_at(padded.len() - d);
    let frac = frac.trim_end_matches('0');
    Some(if frac.is_empty() {
        whole.to_string()
    } else {
        format!("{whole}.{frac}")
    })
}

/// `amount` in the smallest unit, and in token units when the answer gives the token's decimals.
fn amount_line(amount: &str, answer: &Value) -> String {
    let decimals = answer["decimals"]
        .as_u64()
        .and_then(|d| u32::try_from(d).ok());
    let symbol = answer["symbol"].as_str().unwrap_or("");
    match decimals.and_then(|d| token_units(amount, d)) {
        Some(units) => format!("{amount} (smallest unit) = {units} {symbol}")
            .trim_end()
            .to_string(),
        None => format!("{amount} (smallest unit)"),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// The human summary of an upload answer (`POST /campaigns`'s report).
pub fn summary(answer: &Value, dry_run: bool) -> String {
    use std::fmt::Write;
    let t = &answer["totals"];
    let mut out = String::new();
    let what = if dry_run {
        "dry run (nothing written)"
    } else {
        "upload"
    };
    let _ = writeln!(out, "campaign {what}: token {}", text(&answer["token"]));
    let _ = writeln!(
        out,
        "rows:       {} ({} valid, {} invalid)",
        text(&t["rows"]),
        text(&t["valid"]),
        text(&t["invalid"])
    );
    let _ = writeln!(
        out,
        "total:      {}",
        amount_line(t["amount"].as_str().unwrap_or("0"), answer)
    );
    let approval = if answer["approval_required"].as_bool() == Some(true) {
        "needed: a second token with the `approve` scope must approve it before anything is paid"
    } else {
        "not needed"
    };
    let _ = writeln!(out, "approval:   {approval}");
    let chain = &answer["chain"];
    if chain["registration_checked"].as_bool() == Some(true) {
        let _ = writeln!(
            out,
            "receivers:  checked for registration with the token, {} not registered",
            text(&chain["unregistered_receivers"])
        );
    }
    if let Some(balance) = chain["treasury_balance"].as_str() {
        let covers = match chain["covered"].as_bool() {
            Some(true) => "covers the total",
            Some(false) => "does NOT cover the total",
            None => "not compared",
        };
        let _ = writeln!(
            out,
            "treasury:   {} holds {}: {covers}",
            text(&chain["treasury"]),
            amount_line(balance, answer)
        );
    }
    let c = &answer["campaign"];
    if c.is_object() {
        let inserted = answer["inserted"].as_u64().unwrap_or(0);
        let how = if inserted > 0 {
            format!("stored, {inserted} claims queued")
        } else {
            "already uploaded with this file: nothing new".to_string()
        };
        let _ = writeln!(
            out,
            "campaign:   {} `{}` ({how}; status {})",
            text(&c["id"]),
            text(&c["name"]),
            text(&c["status"])
        );
    }
    let errors = answer["errors"].as_array().map_or(&[][..], Vec::as_slice);
    if !errors.is_empty() {
        let _ = writeln!(out, "row errors:");
        for e in errors.iter().take(SHOWN_ERRORS) {
            let field = e["field"]
                .as_str()
                .map_or(String::new(), |f| format!(" {f}"));
            let _ = writeln!(
                out,
                "  row {}{field}: {}",
                text(&e["row"]),
                text(&e["reason"])
            );
        }
        let more = errors.len().saturating_sub(SHOWN_ERRORS);
        let truncated = answer["errors_truncated"].as_bool() == Some(true);
        match (more, truncated) {
            (0, false) => {}
            (n, false) => {
                let _ = writeln!(out, "  … and {n} more");
            }
            (n, true) => {
                let _ = writeln!(
                    out,
                    "  … and {n} more listed, and more the API did not list (--json shows the listed ones)"
                );
            }
        }
    }
    out
}

/// Claim statuses of a campaign, in the order they are shown.
const CLAIM_STATUSES: [&str; 5] = ["held", "pending", "submitted", "confirmed", "failed"];

/// The human summary of `GET /campaigns/{id}` (a campaign summary).
pub fn status_summary(c: &Value) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "campaign {} `{}`: {} (token {}, created by {} at {})",
        text(&c["id"]),
        text(&c["name"]),
        text(&c["status"]),
        text(&c["token"]),
        text(&c["created_by"]),
        text(&c["created_at"])
    );
    let _ = writeln!(
        out,
        "rows:       {} in the file, {} valid, {} skipped as invalid",
        text(&c["rows_total"]),
        text(&c["rows_valid"]),
        text(&c["rows_invalid"])
    );
    let _ = writeln!(
        out,
        "total:      {}",
        amount_line(c["amount_total"].as_str().unwrap_or("0"), c)
    );
    let _ = writeln!(
        out,
        "paid:       {}",
        amount_line(c["paid_total"].as_str().unwrap_or("0"), c)
    );
    if c["approval_required"].as_bool() == Some(true) {
        let by = match (c["approved_by"].as_str(), c["rejected_by"].as_str()) {
            (Some(a), _) => format!("approved by {a} at {}", text(&c["approved_at"])),
            (None, Some(r)) => format!(
                "rejected by {r} at {}: {}",
                text(&c["rejected_at"]),
                text(&c["reject_reason"])
            ),
            (None, None) => "waiting for a second token's approval".into(),
        };
        let _ = writeln!(out, "approval:   {by}");
    }
    let claims = &c["claims"];
    let count = |s: &str| claims[s].as_u64().unwrap_or(0);
    let all: u64 = CLAIM_STATUSES.iter().map(|s| count(s)).sum();
    let confirmed = count("confirmed");
    if let Some(share) = (confirmed * 100).checked_div(all) {
        let _ = writeln!(out, "claims:     {confirmed} of {all} paid ({share}%)");
    }
    let by_status: Vec<String> = CLAIM_STATUSES
        .iter()
        .map(|s| format!("{s} {}", count(s)))
        .collect();
    let _ = writeln!(out, "            {}", by_status.join(", "));
    if count("failed") > 0 {
        let _ = writeln!(
            out,
            "failures:   GET /campaigns/{}/failures.csv lists them",
            text(&c["id"])
        );
    }
    out
}
