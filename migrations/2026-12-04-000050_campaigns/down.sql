-- Held claims were never payable; dropping the campaigns drops them with their rows.
DELETE FROM claims WHERE campaign_id IS NOT NULL AND status = 'held';
DELETE FROM claims WHERE source = 'campaign' AND status = 'pending';
ALTER TABLE claims DROP CONSTRAINT claims_held_in_campaign;
ALTER TABLE claims DROP CONSTRAINT claims_status_check;
ALTER TABLE claims ADD CONSTRAINT claims_status_check
    CHECK (status IN ('pending', 'submitted', 'confirmed', 'failed'));
ALTER TABLE claims DROP CONSTRAINT claims_source_keys;
ALTER TABLE claims ADD CONSTRAINT claims_source_keys CHECK (
    (source = 'event' AND rule IS NOT NULL AND receipt_id IS NOT NULL AND log_index IS NOT NULL
        AND event_index IS NOT NULL AND idempotency_key IS NULL)
    OR (source = 'manual' AND idempotency_key IS NOT NULL AND receipt_id IS NULL)
);
ALTER TABLE claims DROP CONSTRAINT claims_source_check;
ALTER TABLE claims ADD CONSTRAINT claims_source_check CHECK (source IN ('event', 'manual'));
ALTER TABLE claims DROP CONSTRAINT claims_campaign_key;
ALTER TABLE claims DROP CONSTRAINT claims_campaign_row;
ALTER TABLE claims DROP COLUMN row_key;
ALTER TABLE claims DROP COLUMN campaign_id;
DROP TABLE campaigns;
