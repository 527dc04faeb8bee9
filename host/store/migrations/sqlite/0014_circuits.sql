-- The circuit breaker of each connection, shared by every host: after
-- `failures` consecutive `unavailable` errors or timeouts within a window
-- the circuit opens, steps on the connection are parked instead of
-- attempted, and after a cool-down a probe (the connector's `check`)
-- decides whether it closes. `manual`: opened by hand, no probes until
-- closed by hand.
CREATE TABLE circuits (
    connection   TEXT PRIMARY KEY,
    state        TEXT NOT NULL,
    failures     BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    opened_at    BIGINT,
    probe_at     BIGINT,
    manual       BIGINT NOT NULL DEFAULT 0,
    reason       TEXT,
    updated_at   BIGINT NOT NULL
);
-- A connection's circuit settings (JSON: failures, window_ms, cool_down_ms);
-- NULL: the defaults.
ALTER TABLE connections ADD COLUMN circuit TEXT;
-- A run parked on an open circuit: not claimable (`next_at` is the largest
-- time) until the circuit closes; then due again at `parked_at`, so parked
-- runs resume in the order they arrived.
ALTER TABLE runs ADD COLUMN parked_on TEXT;
ALTER TABLE runs ADD COLUMN parked_at BIGINT;
CREATE INDEX runs_parked ON runs (parked_on, parked_at);
