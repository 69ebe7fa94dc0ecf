-- Gas learned from outcomes (issue 18). Each stored transaction records the gas it attached to each action and
-- how many actions it has; the indexer records the gas its receipt burnt. The distributor sizes the gas of the
-- next batches of a token from the recent samples (distributor/src/gas.rs), and a batch whose receipt failed
-- with "Exceeded the prepaid gas." is handed back whole (retry_kind 'gas') to be signed again with more.
ALTER TABLE transactions ADD COLUMN gas_per_action BIGINT CHECK (gas_per_action > 0);
ALTER TABLE transactions ADD COLUMN action_count INTEGER CHECK (action_count > 0);
ALTER TABLE transactions ADD COLUMN gas_burnt BIGINT CHECK (gas_burnt >= 0);
CREATE INDEX transactions_gas_samples ON transactions (token_contract, finished_at DESC)
    WHERE gas_per_action IS NOT NULL AND status IN ('final', 'failed');

ALTER TABLE claims DROP CONSTRAINT claims_retry_kind_check;
ALTER TABLE claims ADD CONSTRAINT claims_retry_kind_check
    CHECK (retry_kind IN ('paused', 'balance', 'registration', 'unknown', 'gas'));
