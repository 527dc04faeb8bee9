-- Webhook events that started runs: at most one run per event (source and
-- id, as the sending system names them) and flow, however often it is sent.
CREATE TABLE flow_events (
    source      TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    flow        TEXT NOT NULL,
    run_id      TEXT NOT NULL REFERENCES runs(id),
    received_at BIGINT NOT NULL,
    PRIMARY KEY (source, event_id, flow)
);
