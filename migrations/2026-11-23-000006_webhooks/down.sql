DROP TRIGGER distributor_status_webhooks ON distributor_status;
DROP TRIGGER claims_webhooks_updated ON claims;
DROP TRIGGER claims_webhooks_inserted ON claims;
DROP FUNCTION webhooks_distributor_paused();
DROP FUNCTION webhooks_claims_updated();
DROP FUNCTION webhooks_claims_inserted();
DROP FUNCTION webhook_claim_data(claims);
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
