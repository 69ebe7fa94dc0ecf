-- One NEP-297 log line can carry several events in its `data` array: each is its own claim.
ALTER TABLE claims ADD COLUMN event_index INTEGER CHECK (event_index >= 0);
UPDATE claims SET event_index = 0 WHERE source = 'event';
ALTER TABLE claims DROP CONSTRAINT claims_event_key;
ALTER TABLE claims ADD CONSTRAINT claims_event_key UNIQUE (receipt_id, log_index, event_index, rule);
ALTER TABLE claims DROP CONSTRAINT claims_source_keys;
ALTER TABLE claims ADD CONSTRAINT claims_source_keys CHECK (
    (source = 'event' AND rule IS NOT NULL AND receipt_id IS NOT NULL AND log_index IS NOT NULL
        AND event_index IS NOT NULL AND idempotency_key IS NULL)
    OR (source = 'manual' AND idempotency_key IS NOT NULL AND receipt_id IS NULL)
);

-- Reconciliation follows a transaction to the receipt it converted into (the token contract's receipt).
ALTER TABLE transactions ADD COLUMN receipt_id TEXT;
CREATE UNIQUE INDEX transactions_receipt ON transactions (receipt_id) WHERE receipt_id IS NOT NULL;
