DROP TRIGGER incidents_webhooks_inserted ON incidents;
DROP FUNCTION webhooks_incidents_inserted();
DELETE FROM webhook_deliveries WHERE event_type = 'incident.opened';
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_event_type_check;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_event_type_check CHECK (event_type IN
    ('claim.created', 'claim.submitted', 'claim.confirmed', 'claim.failed', 'distributor.paused'));
DROP TABLE incidents;
DROP TABLE key_transactions;
