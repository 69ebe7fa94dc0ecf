UPDATE claims SET retry_kind = 'unknown' WHERE retry_kind = 'gas';
ALTER TABLE claims DROP CONSTRAINT claims_retry_kind_check;
ALTER TABLE claims ADD CONSTRAINT claims_retry_kind_check
    CHECK (retry_kind IN ('paused', 'balance', 'registration', 'unknown'));
DROP INDEX transactions_gas_samples;
ALTER TABLE transactions DROP COLUMN gas_burnt;
ALTER TABLE transactions DROP COLUMN action_count;
ALTER TABLE transactions DROP COLUMN gas_per_action;
