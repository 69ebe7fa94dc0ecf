-- Campaign webhooks (issue 20): `campaign.approved` and `campaign.rejected`, and the moment a held claim
-- becomes an event.
--
-- A claim that waits for approval (`held`) is not announced: `claim.created` is sent when it becomes
-- payable — at insert for every other claim, at `held → pending` (the approval) for a held one — so each
-- claim gets exactly one `claim.created`, and never one for a payout that a second person may still refuse.
-- A rejected campaign's held claims (`held → failed`) send no `claim.failed` either: nothing was announced,
-- and `campaign.rejected` says it for the whole campaign.

ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_event_type_check;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_event_type_check CHECK (event_type IN
    ('claim.created', 'claim.submitted', 'claim.confirmed', 'claim.failed', 'distributor.paused',
     'incident.opened', 'campaign.approved', 'campaign.rejected'));

-- A campaign's claims say which campaign and row they pay.
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
            'confirmed_at', c.confirmed_at,
            'campaign_id', c.campaign_id,
            'row_key', c.row_key),
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
              FROM new_claims n WHERE n.status <> 'held' OFFSET 0) c
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
               AND events && ARRAY['claim.created', 'claim.submitted', 'claim.confirmed', 'claim.failed']) THEN
        INSERT INTO webhook_deliveries (endpoint, event_id, event_type, claim_id, payload)
        SELECT e.name, c.event_id, c.event_type, c.id, c.payload
        FROM (SELECT n.id, gen_random_uuid() AS event_id,
                     CASE WHEN o.status = 'held' THEN 'claim.created' ELSE 'claim.' || n.status END AS event_type,
                     webhook_claim_data(n) AS payload
              FROM new_claims n JOIN old_claims o ON o.id = n.id
              WHERE n.status <> o.status
                AND ((o.status = 'held' AND n.status = 'pending')
                     OR (o.status <> 'held' AND n.status IN ('submitted', 'confirmed', 'failed')))
              OFFSET 0) c
        JOIN webhook_endpoints e ON e.enabled AND c.event_type = ANY (e.events)
        ORDER BY c.id, e.name;
    END IF;
    RETURN NULL;
END
$$;

-- campaign.approved / campaign.rejected: the decision, who made it and when, and the campaign's totals.
CREATE FUNCTION webhooks_campaign_decided() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    kind TEXT := 'campaign.' || NEW.status;
BEGIN
    IF NEW.status IN ('approved', 'rejected') AND NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO webhook_deliveries (endpoint, event_id, event_type, payload)
        SELECT e.name, ev.id, kind,
               jsonb_build_object('campaign', jsonb_build_object(
                   'id', NEW.id,
                   'name', NEW.name,
                   'kind', NEW.kind,
                   'token', NEW.token_contract,
                   'status', NEW.status,
                   'created_by', NEW.created_by,
                   'created_at', NEW.created_at,
                   'decided_by', coalesce(NEW.approved_by, NEW.rejected_by),
                   'decided_at', coalesce(NEW.approved_at, NEW.rejected_at),
                   'reject_reason', NEW.reject_reason,
                   'rows_total', NEW.rows_total,
                   'rows_invalid', NEW.rows_invalid,
                   'rows_valid', NEW.rows_total - NEW.rows_invalid,
                   'amount_total', NEW.amount_total::text))
        FROM (SELECT gen_random_uuid() AS id) ev
        CROSS JOIN webhook_endpoints e
        WHERE e.enabled AND kind = ANY (e.events)
        ORDER BY e.name;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER campaigns_webhooks_decided AFTER UPDATE OF status ON campaigns
    FOR EACH ROW EXECUTE FUNCTION webhooks_campaign_decided();
