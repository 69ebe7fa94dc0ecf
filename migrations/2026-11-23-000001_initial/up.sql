-- The whole near-payouts schema. See shared DESIGN "Data model" and "Exactly-once payouts".

-- One signed batch of ft_transfer actions. Stored *before* it is broadcast, so a crash
-- can only ever lead to re-broadcasting the same bytes (same hash), never to a second payment.
CREATE TABLE transactions (
    hash                  TEXT PRIMARY KEY,                 -- base58 CryptoHash
    signer_id             TEXT NOT NULL,
    public_key            TEXT NOT NULL,                    -- "ed25519:..."
    nonce                 BIGINT NOT NULL CHECK (nonce > 0),
    block_hash            TEXT NOT NULL,                    -- the recent block the tx references
    signed_bytes          BYTEA NOT NULL,                   -- borsh(SignedTransaction)
    token_contract        TEXT NOT NULL,
    claim_ids             BIGINT[] NOT NULL,
    status                TEXT NOT NULL DEFAULT 'signed'
                          CHECK (status IN ('signed', 'submitted', 'included', 'final', 'failed', 'dropped')),
    outcome               JSONB,                            -- receipt outcome summary once known
    failure               TEXT,                             -- why it failed / was dropped
    included_block_height BIGINT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    submitted_at          TIMESTAMPTZ,
    finished_at           TIMESTAMPTZ,
    -- One nonce of one key can only ever be used by one transaction of ours.
    CONSTRAINT transactions_key_nonce UNIQUE (public_key, nonce)
);
CREATE INDEX transactions_open ON transactions (status, created_at)
    WHERE status IN ('signed', 'submitted', 'included');

-- One payout.
CREATE TABLE claims (
    id                   BIGSERIAL PRIMARY KEY,
    source               TEXT NOT NULL CHECK (source IN ('event', 'manual')),
    -- event claims: where the event was found (unique together)
    rule                 TEXT,
    receipt_id           TEXT,
    log_index            INTEGER CHECK (log_index >= 0),
    -- manual claims: the client's Idempotency-Key and a digest of its request
    idempotency_key      TEXT,
    request_digest       TEXT,
    token_contract       TEXT NOT NULL CHECK (length(token_contract) BETWEEN 2 AND 64),
    receiver_id          TEXT NOT NULL CHECK (length(receiver_id) BETWEEN 2 AND 64),
    amount               NUMERIC(39, 0) NOT NULL CHECK (amount > 0),
    memo                 TEXT,
    status               TEXT NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'submitted', 'confirmed', 'failed')),
    attempts             INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error           TEXT,
    -- set when the claim's batch failed as a whole: the distributor must isolate it
    needs_isolation      BOOLEAN NOT NULL DEFAULT false,
    trigger_block_height BIGINT,
    current_tx_hash      TEXT REFERENCES transactions (hash),
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    confirmed_at         TIMESTAMPTZ,
    CONSTRAINT claims_source_keys CHECK (
        (source = 'event' AND rule IS NOT NULL AND receipt_id IS NOT NULL AND log_index IS NOT NULL
            AND idempotency_key IS NULL)
        OR (source = 'manual' AND idempotency_key IS NOT NULL AND receipt_id IS NULL)
    ),
    -- A submitted claim always names the transaction that carries it.
    CONSTRAINT claims_submitted_has_tx CHECK (status <> 'submitted' OR current_tx_hash IS NOT NULL),
    -- NULLs are distinct, so each key constrains only its own source.
    CONSTRAINT claims_event_key UNIQUE (receipt_id, log_index, rule),
    CONSTRAINT claims_manual_key UNIQUE (idempotency_key)
);
-- "Oldest pending claims of token T" is an index scan on this partial index.
CREATE INDEX claims_pending_by_token ON claims (token_contract, id) WHERE status = 'pending';
CREATE INDEX claims_receiver ON claims (receiver_id, id);
CREATE INDEX claims_status_id ON claims (status, id);
CREATE INDEX claims_current_tx ON claims (current_tx_hash) WHERE current_tx_hash IS NOT NULL;

-- The treasury's key pool: one nonce lane per key, leased to one distributor process at a time.
CREATE TABLE access_keys (
    public_key       TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL,
    last_nonce       BIGINT,                     -- NULL until read from the chain
    lease_owner      TEXT,
    lease_expires_at TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT access_keys_lease_pair CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL))
);

-- Last fully processed block per stream, moved in the same DB transaction as that block's rows.
CREATE TABLE indexer_cursor (
    stream       TEXT PRIMARY KEY,
    block_height BIGINT NOT NULL CHECK (block_height >= 0),
    block_hash   TEXT,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
