-- Why an indexer stream is not advancing, while it is not: a block whose prev_hash does not chain onto the
-- cursor (a block missing from the source), or a block source failing for longer than `stuck_after_secs`.
-- Written by the indexer, read by /ready and /status (which may run in another process); deleted once the
-- stream moves again.
CREATE TABLE indexer_stalls (
    stream     TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('chain_gap', 'source')),
    reason     TEXT NOT NULL,
    since      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
