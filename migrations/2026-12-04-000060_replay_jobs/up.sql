-- Replays requested over HTTP (`POST /admin/replay`) are jobs: the API inserts one, an indexer process
-- (`payouts indexer`, `payouts run`) takes it and runs the indexer's replay path, reporting progress here, so
-- the API never runs indexer code and any API process can show the state.
CREATE TABLE replay_jobs (
    id              BIGSERIAL PRIMARY KEY,
    stream          TEXT NOT NULL,
    from_height     BIGINT NOT NULL CHECK (from_height >= 0),
    to_height       BIGINT NOT NULL CHECK (to_height >= from_height),
    dry_run         BOOLEAN NOT NULL,
    state           TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
    -- Name of the API token that asked (never the secret).
    requested_by    TEXT NOT NULL,
    -- The indexer process running it (lease owner id), while running.
    owner           TEXT,
    heartbeat_at    TIMESTAMPTZ,
    progress_height BIGINT,
    blocks          BIGINT NOT NULL DEFAULT 0,
    events          BIGINT NOT NULL DEFAULT 0,
    new_claims      BIGINT NOT NULL DEFAULT 0,
    error           TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    CONSTRAINT replay_jobs_running_owned CHECK ((state = 'running') = (owner IS NOT NULL AND heartbeat_at IS NOT NULL))
);
-- One replay at a time across the service: a second request while one is queued or running is a 409.
CREATE UNIQUE INDEX replay_jobs_one_active ON replay_jobs ((true)) WHERE state IN ('queued', 'running');
