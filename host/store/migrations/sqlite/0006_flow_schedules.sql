-- When each flow with a schedule trigger fires next. Hosts fire a due
-- schedule by moving next_at forward with a compare-and-set, so one fire
-- starts one run however many hosts share the database.
CREATE TABLE flow_schedules (
    flow    TEXT PRIMARY KEY NOT NULL REFERENCES flows(name),
    next_at BIGINT NOT NULL
);
