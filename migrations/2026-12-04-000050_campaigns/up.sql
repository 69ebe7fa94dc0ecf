-- Campaigns (issue 20): a named set of transfers from one uploaded file (or one single send above the approval
-- threshold). Its claims are inserted `held` when it needs a second person's approval; approval turns them
-- `pending` in the same DB transaction that records who approved. The distributor only ever picks `pending`
-- claims, so a held claim cannot be paid. See payouts-store `campaigns` for the full argument.
CREATE TABLE campaigns (
    id                BIGSERIAL PRIMARY KEY,
    -- 'file': an uploaded CSV / JSON lines file; 'send': one POST /send-ft above api.single_approval_threshold
    kind              TEXT NOT NULL CHECK (kind IN ('file', 'send')),
    -- Unique across the service (not per API token): another token re-uploading the same file under the same
    -- name must find the existing campaign, not pay it again.
    name              TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    token_contract    TEXT NOT NULL CHECK (length(token_contract) BETWEEN 2 AND 64),
    -- Name of the API token that uploaded it (not the secret).
    created_by        TEXT NOT NULL,
    -- sha256 of the uploaded bytes, hex: the same name with another digest is a 409.
    file_digest       TEXT NOT NULL CHECK (file_digest ~ '^[0-9a-f]{64}$'),
    status            TEXT NOT NULL
                      CHECK (status IN ('uploaded', 'awaiting_approval', 'approved', 'rejected', 'running', 'done')),
    approval_required BOOLEAN NOT NULL,
    rows_total        BIGINT NOT NULL CHECK (rows_total >= 0),
    rows_invalid      BIGINT NOT NULL DEFAULT 0 CHECK (rows_invalid >= 0),
    amount_total      NUMERIC(39, 0) NOT NULL CHECK (amount_total >= 0),
    approved_by       TEXT,
    approved_at       TIMESTAMPTZ,
    rejected_by       TEXT,
    rejected_at       TIMESTAMPTZ,
    reject_reason     TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT campaigns_name_key UNIQUE (name),
    -- The four-eyes rule, enforced by the database as well as by the API.
    CONSTRAINT campaigns_second_person CHECK (approved_by IS NULL OR approved_by <> created_by),
    CONSTRAINT campaigns_approval_recorded CHECK (
        (approved_by IS NULL) = (approved_at IS NULL) AND (rejected_by IS NULL) = (rejected_at IS NULL)
        AND NOT (approved_by IS NOT NULL AND rejected_by IS NOT NULL)
    ),
    -- A campaign that needed approval is past `awaiting_approval` only with an approver (or a rejecter).
    CONSTRAINT campaigns_gate CHECK (
        NOT approval_required
        OR status IN ('uploaded', 'awaiting_approval')
        OR (status = 'rejected' AND rejected_by IS NOT NULL)
        OR (status IN ('approved', 'running', 'done') AND approved_by IS NOT NULL)
    )
);
CREATE INDEX campaigns_status ON campaigns (status, id);

ALTER TABLE claims ADD COLUMN campaign_id BIGINT REFERENCES campaigns (id);
-- The row's key within its campaign: the file's external_id, or `#<row number>` without one.
ALTER TABLE claims ADD COLUMN row_key TEXT CHECK (length(row_key) BETWEEN 1 AND 128);
ALTER TABLE claims ADD CONSTRAINT claims_campaign_row CHECK ((campaign_id IS NULL) = (row_key IS NULL));
-- Exactly once per row: a re-upload, a retried request or a crash between chunks never inserts a row twice.
ALTER TABLE claims ADD CONSTRAINT claims_campaign_key UNIQUE (campaign_id, row_key);

ALTER TABLE claims DROP CONSTRAINT claims_source_check;
ALTER TABLE claims ADD CONSTRAINT claims_source_check CHECK (source IN ('event', 'manual', 'campaign'));
ALTER TABLE claims DROP CONSTRAINT claims_source_keys;
ALTER TABLE claims ADD CONSTRAINT claims_source_keys CHECK (
    (source = 'event' AND rule IS NOT NULL AND receipt_id IS NOT NULL AND log_index IS NOT NULL
        AND event_index IS NOT NULL AND idempotency_key IS NULL AND campaign_id IS NULL)
    OR (source = 'manual' AND idempotency_key IS NOT NULL AND receipt_id IS NULL)
    OR (source = 'campaign' AND campaign_id IS NOT NULL AND idempotency_key IS NULL AND receipt_id IS NULL)
);
-- `held`: waiting for its campaign's approval; never seen by the distributor (it only locks `pending`).
ALTER TABLE claims DROP CONSTRAINT claims_status_check;
ALTER TABLE claims ADD CONSTRAINT claims_status_check
    CHECK (status IN ('held', 'pending', 'submitted', 'confirmed', 'failed'));
ALTER TABLE claims ADD CONSTRAINT claims_held_in_campaign CHECK (status <> 'held' OR campaign_id IS NOT NULL);
