//! How a failed execution reads in a claim's `last_error`, the same whether the indexer saw the receipt in
//! the stream or the distributor looked the transaction up by RPC.

use near_primitives::errors::{ActionErrorKind, FunctionCallError, TxExecutionError};

/// A readable message for a failed execution (the contract's panic text when there is one).
pub fn failure_message(err: &TxExecutionError) -> String {
    match err {
        TxExecutionError::ActionError(a) => match &a.kind {
            ActionErrorKind::FunctionCallError(FunctionCallError::ExecutionError(msg)) => {
                msg.clone()
            }
            other => serde_json::to_string(other).unwrap_or_else(|_| format!("{other:?}")),
        },
        TxExecutionError::InvalidTxError(e) => format!("invalid transaction: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use near_primitives::errors::ActionError;

    use super::*;

    #[test]
    fn a_contract_panic_reads_as_its_text() {
        let err = TxExecutionError::ActionError(ActionError {
            index: Some(0),
            kind: ActionErrorKind::FunctionCallError(FunctionCallError::ExecutionError(
                "Smart contract panicked: The account is not registered".into(),
            )),
        });
        assert_eq!(
            failure_message(&err),
            "Smart contract panicked: The account is not registered"
        );
    }
}
