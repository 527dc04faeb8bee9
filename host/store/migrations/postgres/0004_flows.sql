-- Durable flows (PostgreSQL; the same tables as the SQLite migration).
-- Times that the worker compares (next_at, lease_until) are milliseconds
-- since the Unix epoch in BIGINT columns; JSON is stored as TEXT.

-- A deployed flow and its current version.
CREATE TABLE flows (
    name       TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    version    BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Every version of every flow, as deployed (the TOML text).
CREATE TABLE flow_versions (
    flow        TEXT NOT NULL REFERENCES flows(name),
    version     BIGINT NOT NULL,
    source      TEXT NOT NULL,
    digest      TEXT NOT NULL,
    deployed_at TEXT NOT NULL,
    deployed_by TEXT NOT NULL,
    PRIMARY KEY (flow, version)
);

-- Runs: pending -> running -> completed, or -> compensating -> compensated,
-- or failed. A worker owns a run while lease_until is in the future.
CREATE TABLE runs (
    id            TEXT PRIMARY KEY NOT NULL,
    flow          TEXT NOT NULL,
    flow_version  BIGINT NOT NULL,
    status        TEXT NOT NULL,
    trigger_event TEXT NOT NULL,
    error         TEXT,
    failed_step   TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    next_at       BIGINT NOT NULL,
    lease_owner   TEXT,
    lease_until   BIGINT,
    FOREIGN KEY (flow, flow_version) REFERENCES flow_versions(flow, version)
);
CREATE INDEX runs_runnable ON runs (status, next_at);
CREATE INDEX runs_by_flow ON runs (flow, created_at);

-- The steps of each run. idempotency_key is derived from (run, step) once,
-- at run creation, and never changes: retries, restarts and replays reuse it.
CREATE TABLE run_steps (
    run_id                TEXT NOT NULL REFERENCES runs(id),
    step_id               TEXT NOT NULL,
    position              BIGINT NOT NULL,
    status                TEXT NOT NULL,
    attempts              BIGINT NOT NULL DEFAULT 0,
    compensation_attempts BIGINT NOT NULL DEFAULT 0,
    errors                TEXT NOT NULL DEFAULT '[]',
    input                 TEXT,
    input_override        TEXT,
    output                TEXT,
    idempotency_key       TEXT NOT NULL,
    started_at            BIGINT,
    finished_at           BIGINT,
    compensated_at        BIGINT,
    PRIMARY KEY (run_id, step_id)
);

-- Runs that failed for good, with what is needed to understand and replay them.
CREATE TABLE dead_letters (
    id         TEXT PRIMARY KEY NOT NULL,
    run_id     TEXT NOT NULL REFERENCES runs(id),
    flow       TEXT NOT NULL,
    step_id    TEXT NOT NULL,
    attempts   BIGINT NOT NULL,
    errors     TEXT NOT NULL,
    input      TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX dead_letters_by_flow ON dead_letters (flow, created_at);
