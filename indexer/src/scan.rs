//! Reads one `StreamerMessage` into what the indexer writes: claims from matching events, malformed event
//! logs, and the facts reconciliation needs (our transactions' receipts, receipt outcomes, memo'd transfers).
//! Pure: no I/O, so it is tested on real lake data.

use near_crypto::PublicKey;
use near_lake_framework::near_indexer_primitives::types::AccountId;
use near_lake_framework::near_indexer_primitives::views::{
    ExecutionOutcomeView, ExecutionStatusView,
};
use near_lake_framework::near_indexer_primitives::{CryptoHash, StreamerMessage};
use payouts_near::failure_message;
use payouts_store::claims::{EventKey, NewClaim};
use payouts_store::memo::claim_ids_from_memo;
use payouts_store::{ClaimId, Yocto};
use serde_json::Value;

use crate::rules::{parse_event_log, Rule};

/// A log line that said it was a NEP-297 event of a watched contract but could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedLog {
    /// Receipt whose outcome held it.
    pub receipt_id: String,
    /// Index of the log line.
    pub log_index: u32,
    /// What is wrong.
    pub reason: String,
}

/// A chunk transaction and the receipt it converted into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxReceipt {
    /// Transaction hash (kept binary: reconciliation compares it with the few open transactions of ours,
    /// so most blocks' hashes are never base58-encoded).
    pub tx_hash: CryptoHash,
    /// The receipt created by converting it, when conversion succeeded.
    pub receipt_id: Option<CryptoHash>,
    /// Why conversion failed, when it did.
    pub failure: Option<String>,
    /// Signer account (matched against the treasury's keys: `key_transactions`).
    pub signer_id: AccountId,
    /// Signing key.
    pub public_key: PublicKey,
    /// Its nonce.
    pub nonce: u64,
}

/// A receipt's execution result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptOutcome {
    /// Receipt id.
    pub receipt_id: CryptoHash,
    /// `Ok` on success, else the failure message.
    pub result: Result<(), String>,
    /// Gas it burnt (what the distributor learns its gas per action from).
    pub gas_burnt: u64,
}

/// A successful NEP-141 `ft_transfer` event whose memo names claims of ours (one, or several when the
/// transfer was merged: then its amount is their sum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoTransfer {
    /// The claims named by the memo, in memo order.
    pub claim_ids: Vec<ClaimId>,
    /// Token contract that emitted it.
    pub token: String,
    /// Sender.
    pub from: String,
    /// Receiver.
    pub to: String,
    /// Amount.
    pub amount: Yocto,
    /// Receipt whose outcome logged the event (for incidents: is it the receipt of our transaction?).
    pub receipt_id: CryptoHash,
}

/// Everything one block contributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockFindings {
    /// Block height.
    pub height: u64,
    /// Block hash (base58).
    pub hash: String,
    /// Block timestamp, ns since the epoch.
    pub timestamp_nanos: u64,
    /// Claims found.
    pub claims: Vec<NewClaim>,
    /// Bad event logs of watched contracts.
    pub malformed: Vec<MalformedLog>,
    /// Every chunk transaction of the block.
    pub transactions: Vec<TxReceipt>,
    /// Every receipt outcome of the block.
    pub receipt_outcomes: Vec<ReceiptOutcome>,
    /// Transfers carrying a claim memo.
    pub memo_transfers: Vec<MemoTransfer>,
}

fn outcome_result(outcome: &ExecutionOutcomeView) -> Option<Result<(), String>> {
    match &outcome.status {
        ExecutionStatusView::SuccessValue(_) | ExecutionStatusView::SuccessReceiptId(_) => {
            Some(Ok(()))
        }
        ExecutionStatusView::Failure(e) => Some(Err(failure_message(e))),
        ExecutionStatusView::Unknown => None,
    }
}

/// Scans one block with `rules`.
pub fn scan_block(msg: &StreamerMessage, rules: &[Rule]) -> BlockFindings {
    let header = &msg.block.header;
    let mut found = BlockFindings {
        height: header.height,
        hash: header.hash.to_string(),
        timestamp_nanos: header.timestamp_nanosec,
        ..Default::default()
    };
    for shard in &msg.shards {
        if let Some(chunk) = &shard.chunk {
            for tx in &chunk.transactions {
                let outcome = &tx.outcome.execution_outcome.outcome;
                let failure = match outcome_result(outcome) {
                    Some(Err(msg)) => Some(msg),
                    _ => None,
                };
                found.transactions.push(TxReceipt {
                    tx_hash: tx.transaction.hash,
                    receipt_id: outcome.receipt_ids.first().copied(),
                    failure,
                    signer_id: tx.transaction.signer_id.clone(),
                    public_key: tx.transaction.public_key.clone(),
                    nonce: tx.transaction.nonce,
                });
            }
        }
        for ro in &shard.receipt_execution_outcomes {
            let with_id = &ro.execution_outcome;
            let Some(result) = outcome_result(&with_id.outcome) else {
                continue;
            };
            let succeeded = result.is_ok();
            found.receipt_outcomes.push(ReceiptOutcome {
                receipt_id: with_id.id,
                result,
                gas_burnt: with_id.outcome.gas_burnt.as_gas(),
            });
            // Only a successful receipt's events happened: a failed one keeps its logs but reverted them.
            if succeeded && !with_id.outcome.logs.is_empty() {
                scan_logs(&mut found, rules, with_id.id, &with_id.outcome);
            }
        }
    }
    found
}

fn scan_logs(
    found: &mut BlockFindings,
    rules: &[Rule],
    receipt: CryptoHash,
    outcome: &ExecutionOutcomeView,
) {
    let receipt_id = receipt.to_string();
    let receipt_id = receipt_id.as_str();
    let executor = &outcome.executor_id;
    let watched = rules.iter().any(|r| &r.contract == executor);
    for (log_index, log) in outcome.logs.iter().enumerate() {
        let log_index = u32::try_from(log_index).unwrap_or(u32::MAX);
        let Some(parsed) = parse_event_log(log) else {
            continue;
        };
        let event = match parsed {
            Ok(ev) => ev,
            Err(reason) => {
                if watched {
                    found.malformed.push(MalformedLog {
                        receipt_id: receipt_id.into(),
                        log_index,
                        reason,
                    });
                }
                continue;
            }
        };
        if event.standard == "nep141" && event.event == "ft_transfer" {
            memo_transfers(found, executor.as_str(), receipt, &event.items);
        }
        for rule in rules.iter().filter(|r| r.matches(executor, &event)) {
            for (event_index, item) in event.items.iter().enumerate() {
                match rule.payout(item) {
                    Ok(p) => {
                        let key = EventKey {
                            rule: rule.name.clone(),
                            receipt_id: receipt_id.into(),
                            log_index,
                            event_index: u32::try_from(event_index).unwrap_or(u32::MAX),
                            block_height: found.height,
                        };
                        found.claims.push(NewClaim::event(
                            key,
                            rule.token.as_str(),
                            p.receiver.as_str(),
                            p.amount,
                            rule.memo.clone(),
                        ));
                    }
                    Err(reason) => found.malformed.push(MalformedLog {
                        receipt_id: receipt_id.into(),
                        log_index,
                        reason: format!("rule {}: item {event_index}: {reason}", rule.name),
                    }),
                }
            }
        }
    }
}

fn memo_transfers(found: &mut BlockFindings, token: &str, receipt: CryptoHash, items: &[Value]) {
    for item in items {
        let text = |k: &str| item.get(k).and_then(Value::as_str);
        let Some(claim_ids) = text("memo").and_then(claim_ids_from_memo) else {
            continue;
        };
        let (Some(from), Some(to), Some(amount)) = (
            text("old_owner_id"),
            text("new_owner_id"),
            text("amount").and_then(|a| a.parse::<Yocto>().ok()),
        ) else {
            continue;
        };
        found.memo_transfers.push(MemoTransfer {
            claim_ids,
            token: token.into(),
            from: from.into(),
            to: to.into(),
            amount,
            receipt_id: receipt,
        });
    }
}
