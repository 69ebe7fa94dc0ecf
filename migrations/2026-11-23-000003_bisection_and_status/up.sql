-- Bisection: when a batch of several claims fails as a whole, its claims are handed back in two halves.
-- Claims of one half share a split_group and are only ever batched together, until a bad claim stands alone.
ALTER TABLE claims ADD COLUMN split_group TEXT;
ALTER TABLE claims ADD CONSTRAINT claims_split_group_isolated CHECK (split_group IS NULL OR needs_isolation);

-- What each distributor process reports about itself, for the status page (it may run on another machine).
CREATE TABLE distributor_status (
    owner          TEXT PRIMARY KEY,             -- the process's lease owner id
    paused_reason  TEXT,                         -- why it is not sending right now (NULL: running)
    last_error     TEXT,
    last_error_at  TIMESTAMPTZ,
    started_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    stopped_at     TIMESTAMPTZ
);
