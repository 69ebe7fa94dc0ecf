-- Webhooks: an outbox written by triggers, in the same transaction as the state change that causes it.
--
-- Every claim state change goes through the claims table (indexer inserts, POST /send-ft, submit, confirm,
-- fail), so statement-level triggers with transition tables see all of them at once, whatever code path
-- made them: a rolled-back change leaves no notification, a committed one always has its rows. When no
-- enabled endpoint wants an event type, the trigger writes nothing.

-- The configured endpoints, synced from the configuration by the delivery worker at start-up (the secret
-- stays in the worker's environment, never in the database). One worker process holds an endpoint's lease.
CREATE TABLE webhook_endpoints (
    name             TEXT PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    url              TEXT NOT NULL,
    events           TEXT[] NOT NULL,
    enabled          BOOLEAN NOT NULL DEFAULT true,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMPTZ,
    delivered_total  BIGINT NOT NULL DEFAULT 0,
    last_delivered_at TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT webhook_endpoints_lease_pair CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL))
);

-- One notification to one endpoint. `id` is the creation order, which is the per-endpoint delivery order.
-- `event_id` is shared by the endpoints notified of the same event; receivers deduplicate on it.
-- No foreign keys: the triggers join the endpoints themselves, and a per-row check would cost every payout.
CREATE TABLE webhook_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    endpoint        TEXT NOT NULL,
    event_id        UUID NOT NULL,
    event_type      TEXT NOT NULL CHECK (event_type IN
                        ('claim.created', 'claim.submitted', 'claim.confirmed', 'claim.failed', 'distributor.paused')),
    claim_id        BIGINT,
    payload         JSONB NOT NULL,             -- the body's `data`, frozen at the state change
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error      TEXT,
    last_http_status INTEGER,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at    TIMESTAMPTZ,
    dead_at         TIMESTAMPTZ
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint, id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_dead ON webhook_deliveries (dead_at) WHERE status = 'dead';
CREATE INDEX webhook_deliveries_delivered ON webhook_deliveries (delivered_at) WHERE status = 'delivered';

-- The body's `data` for a claim event: the claim as the API shows it, the transaction and block when known.
CREATE FUNCTION webhook_claim_data(c claims) RETURNS jsonb
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

-- claim.created: every inserted claim (ON CONFLICT DO NOTHING rows are not in the transition table).
CREATE FUNCTION webhooks_claims_inserted() RETURNS trigger
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

-- claim.submitted / claim.confirmed / claim.failed: every status change into those states. (A hand-back
-- to `pending` is not an event of its own: the next claim.submitted or claim.failed follows.)
CREATE FUNCTION webhooks_claims_updated() RETURNS trigger
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

CREATE TRIGGER claims_webhooks_inserted AFTER INSERT ON claims
    REFERENCING NEW TABLE AS new_claims
    FOR EACH STATEMENT EXECUTE FUNCTION webhooks_claims_inserted();
CREATE TRIGGER claims_webhooks_updated AFTER UPDATE ON claims
    REFERENCING OLD TABLE AS old_claims NEW TABLE AS new_claims
    FOR EACH STATEMENT EXECUTE FUNCTION webhooks_claims_updated();

-- distributor.paused: a distributor process starts reporting a pause reason (or a different one).
CREATE FUNCTION webhooks_distributor_paused() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.paused_reason IS NOT NULL AND NEW.paused_reason IS DISTINCT FROM OLD.paused_reason THEN
        INSERT INTO webhook_deliveries (endpoint, event_id, event_type, payload)
        SELECT e.name, ev.id, 'distributor.paused',
               jsonb_build_object('distributor', jsonb_build_object(
                   'owner', NEW.owner, 'paused_reason', NEW.paused_reason, 'since', now()))
        FROM (SELECT gen_random_uuid() AS id) ev
        CROSS JOIN webhook_endpoints e
        WHERE e.enabled AND 'distributor.paused' = ANY (e.events)
        ORDER BY e.name;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER distributor_status_webhooks AFTER UPDATE OF paused_reason ON distributor_status
    FOR EACH ROW EXECUTE FUNCTION webhooks_distributor_paused();
