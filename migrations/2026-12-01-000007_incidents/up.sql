-- Incidents: payments on chain the store did not expect (issue 16, DESIGN "Exactly-once payouts" rule 3).
--
-- key_transactions: every transaction the indexer saw signed by one of the treasury's keys (the keys in
-- access_keys), ours or not, written in the same DB transaction as the cursor move past its block. It ties a
-- conversion receipt to the transaction that made it, whatever the store thinks of that transaction.
CREATE TABLE key_transactions (
    hash         TEXT PRIMARY KEY,
    signer_id    TEXT NOT NULL,
    public_key   TEXT NOT NULL,
    nonce        BIGINT NOT NULL,
    block_height BIGINT NOT NULL,
    block_hash   TEXT NOT NULL,
    receipt_id   TEXT,                       -- the receipt it converted into; NULL when conversion failed
    failure      TEXT,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX key_transactions_receipt ON key_transactions (receipt_id) WHERE receipt_id IS NOT NULL;
CREATE INDEX key_transactions_key_nonce ON key_transactions (public_key, nonce);

-- One incident per (kind, subject): re-scanning a range (payouts replay) finds the same subject and inserts
-- nothing. token_contract NULL means every token (nonce_ahead: a key pays any token).
CREATE TABLE incidents (
    id             BIGSERIAL PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN
                       ('unexpected_memo_payment', 'dead_transaction_landed', 'nonce_ahead')),
    subject        TEXT NOT NULL,           -- receipt/claim, tx hash, or key@nonce: the idempotency key
    token_contract TEXT,
    tx_hash        TEXT,
    receipt_id     TEXT,
    claim_id       BIGINT,
    public_key     TEXT,
    block_height   BIGINT,
    details        JSONB NOT NULL DEFAULT '{}'::jsonb,
    detected_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    cleared_at     TIMESTAMPTZ,
    cleared_by     TEXT,
    CONSTRAINT incidents_subject UNIQUE (kind, subject),
    CONSTRAINT incidents_cleared_pair CHECK ((cleared_at IS NULL) = (cleared_by IS NULL))
);
-- The distributor asks "is anything open for this token?" before every batch.
CREATE INDEX incidents_open ON incidents (token_contract) WHERE cleared_at IS NULL;

-- incident.opened: every new incident row (ON CONFLICT DO NOTHING rows are not in the transition table).
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_event_type_check;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_event_type_check CHECK (event_type IN
    ('claim.created', 'claim.submitted', 'claim.confirmed', 'claim.failed', 'distributor.paused',
     'incident.opened'));

CREATE FUNCTION webhooks_incidents_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled AND 'incident.opened' = ANY (events)) THEN
        INSERT INTO webhook_deliveries (endpoint, event_id, event_type, claim_id, payload)
        SELECT e.name, i.event_id, 'incident.opened', i.claim_id, i.payload
        FROM (SELECT n.id, n.claim_id, gen_random_uuid() AS event_id,
                     jsonb_build_object('incident', jsonb_build_object(
                         'id', n.id,
                         'kind', n.kind,
                         'token', n.token_contract,
                         'tx_hash', n.tx_hash,
                         'receipt_id', n.receipt_id,
                         'claim_id', n.claim_id,
                         'public_key', n.public_key,
                         'block_height', n.block_height,
                         'details', n.details,
                         'detected_at', n.detected_at)) AS payload
              FROM new_incidents n OFFSET 0) i
        CROSS JOIN webhook_endpoints e
        WHERE e.enabled AND 'incident.opened' = ANY (e.events)
        ORDER BY i.id, e.name;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER incidents_webhooks_inserted AFTER INSERT ON incidents
    REFERENCING NEW TABLE AS new_incidents
    FOR EACH STATEMENT EXECUTE FUNCTION webhooks_incidents_inserted();
