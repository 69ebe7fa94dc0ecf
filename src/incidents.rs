//! `payouts incidents list|clear <id>`: the operator's side of incidents (store/src/incidents.rs), for when
//! the API is not at hand. Clearing is recorded as `cli:<by>`.

use anyhow::Context;
use payouts_store::incidents::{clear_incident, list_incidents, Clearing, Incident};

use crate::cli::IncidentsAction;
use crate::config::Config;

/// Most incidents listed.
const LISTED: i64 = 1_000;

pub async fn run(config: Config, action: IncidentsAction) -> anyhow::Result<()> {
    let pool = crate::roles::prepare_database(&config).await?;
    let mut conn = payouts_store::get(&pool).await?;
    match action {
        IncidentsAction::List { all, json } => {
            let list = list_incidents(&mut conn, !all, LISTED)
                .await
                .context("listing incidents")?;
            if json {
                for i in &list {
                    println!("{}", serde_json::to_string(i)?);
                }
            } else if list.is_empty() {
                println!(
                    "{}",
                    if all {
                        "no incidents"
                    } else {
                        "no open incidents"
                    }
                );
            } else {
                for i in &list {
                    println!("{}", line(i));
                }
            }
            Ok(())
        }
        IncidentsAction::Clear { id, by } => {
            let by = format!("cli:{by}");
            match clear_incident(&mut conn, id, &by).await? {
                Clearing::Cleared(i) => {
                    tracing::warn!(id, %by, kind = %i.kind, "incident cleared");
                    println!("cleared: {}", line(&i));
                    Ok(())
                }
                Clearing::AlreadyCleared(i) => anyhow::bail!(
                    "incident {id} was already cleared by {} at {}",
                    i.cleared_by.as_deref().unwrap_or("?"),
                    i.cleared_at.map(|t| t.to_rfc3339()).unwrap_or_default()
                ),
                Clearing::NotFound => anyhow::bail!("incident {id} does not exist"),
            }
        }
    }
}

fn line(i: &Incident) -> String {
    let state = match (&i.cleared_at, &i.cleared_by) {
        (Some(at), Some(by)) => format!("cleared by {by} at {}", at.to_rfc3339()),
        _ => "OPEN".into(),
    };
    format!(
        "#{} {} token={} claim={} tx={} receipt={} key={} block={} detected={} {state} details={}",
        i.id,
        i.kind,
        i.token_contract.as_deref().unwrap_or("*every token*"),
        i.claim_id.map_or("-".into(), |c| c.to_string()),
        i.tx_hash.as_deref().unwrap_or("-"),
        i.receipt_id.as_deref().unwrap_or("-"),
        i.public_key.as_deref().unwrap_or("-"),
        i.block_height.map_or("-".into(), |h| h.to_string()),
        i.detected_at.to_rfc3339(),
        i.details,
    )
}
