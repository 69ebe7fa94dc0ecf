DROP TRIGGER campaigns_webhooks_decided ON campaigns;
DROP FUNCTION webhooks_campaign_decided();
DELETE FROM webhook_deliveries WHERE event_type IN ('campaign.approved', 'campaign.rejected');
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_event_type_check;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_event_type_check CHECK (event_type IN
    ('claim.created', 'claim.submitted', 'claim.confirmed', 'claim.failed', 'distributor.paused',
     'incident.opened'));

CREATE OR REPLACE FUNCTION webhook_claim_data(c claims) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'claim', jsonb_build_object(
            'id', c.id,
            'source', c.source,
            'status', c.status,
            'token', c.token_contract,
            'receiver_id', c.receiver_id,
            'amount', c.amount::text,
            'memo', c.memo,
            'attempts', c.attempts,
            'last_error', c.last_error,
            'tx_hash', c.current_tx_hash,
            'rule', c.rule,
            'receipt_id', c.receipt_id,
            'trigger_block_height', c.trigger_block_height,
            'idempotency_key', c.idempotency_key,
            'created_at', c.created_at,
            'updated_at', c.updated_at,
            'confirmed_at', c.confirmed_at),
        'transaction_hash', c.current_tx_hash,
        'block_height', CASE
            WHEN c.current_tx_hash IS NOT NULL
                THEN (SELECT t.included_block_height FROM transactions t WHERE t.hash = c.current_tx_hash)
            ELSE c.trigger_block_height
        END)
$$;

CREATE OR REPLACE FUNCTION webhooks_claims_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled AND 'claim.created' = ANY (events)) THEN
        INSERT INTO webhook_deliveries (endpoint, event_id, event_type, claim_id, payload)
        SELECT e.name, c.event_id, 'claim.created', c.id, c.payload
        FROM (SELECT n.id, gen_random_uuid() AS event_id, webhook_claim_data(n) AS payload
              FROM new_claims n OFFSET 0) c
        CROSS JOIN webhook_endpoints e
        WHERE e.enabled AND 'claim.created' = ANY (e.events)
        ORDER BY c.id, e.name;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION webhooks_claims_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled
               AND events && ARRAY['claim.submitted', 'claim.confirmed', 'claim.failed']) THEN
        INSERT INTO webhook_deliveries (endpoint, event_id, event_type, claim_id, payload)
        SELECT e.name, c.event_id, c.event_type, c.id, c.payload
        FROM (SELECT n.id, gen_random_uuid() AS event_id, 'claim.' || n.status AS event_type,
                     webhook_claim_data(n) AS payload
              FROM new_claims n JOIN old_claims o ON o.id = n.id
              WHERE n.status <> o.status AND n.status IN ('submitted', 'confirmed', 'failed')
              OFFSET 0) c
        JOIN webhook_endpoints e ON e.enabled AND c.event_type = ANY (e.events)
        ORDER BY c.id, e.name;
    END IF;
    RETURN NULL;
END
$$;
