DROP INDEX transactions_receipt;
ALTER TABLE transactions DROP COLUMN receipt_id;
ALTER TABLE claims DROP CONSTRAINT claims_source_keys;
ALTER TABLE claims DROP CONSTRAINT claims_event_key;
-- Going back to one claim per log line: keep only the first item of each.
DELETE FROM claims WHERE source = 'event' AND event_index > 0;
ALTER TABLE claims ADD CONSTRAINT claims_event_key UNIQUE (receipt_id, log_index, rule);
ALTER TABLE claims ADD CONSTRAINT claims_source_keys CHECK (
    (source = 'event' AND rule IS NOT NULL AND receipt_id IS NOT NULL AND log_index IS NOT NULL
        AND idempotency_key IS NULL)
    OR (source = 'manual' AND idempotency_key IS NOT NULL AND receipt_id IS NULL)
);
ALTER TABLE claims DROP COLUMN event_index;
