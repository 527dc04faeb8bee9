-- Steps that wait for a signal (an approval): the run holds no lease while
-- it waits; `waiting_for` names the signal it waits for, and its `next_at`
-- is the wait's deadline (the largest time without one).
ALTER TABLE runs ADD COLUMN waiting_for TEXT;
-- The signals a run received, with who sent them and when: the record of
-- who approved what. A worker consumes a signal when it moves the run on.
CREATE TABLE run_signals (
    id          TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs(id),
    step_id     TEXT NOT NULL,
    name        TEXT NOT NULL,
    decision    TEXT NOT NULL,
    comment     TEXT,
    data        TEXT,
    actor       TEXT NOT NULL,
    at          BIGINT NOT NULL,
    consumed_at BIGINT
);
CREATE INDEX run_signals_run ON run_signals (run_id, step_id);
