-- Business KPIs. Every manual touch of a run (a replay of its dead letter,
-- with or without a corrected input, or a discard) is kept here: dead
-- letters are deleted when handled, and the share of runs that needed a
-- person is read from this table.
CREATE TABLE run_touches (
    run_id      TEXT NOT NULL REFERENCES runs(id),
    kind        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    dead_letter TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX run_touches_by_run ON run_touches (run_id);

-- The KPI windows: runs by creation time, steps by completion time.
CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX run_steps_by_finished ON run_steps (finished_at);
