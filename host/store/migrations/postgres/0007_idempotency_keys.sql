-- Idempotency-Key of operation invokes (Stripe's semantics): the first
-- request with a key runs, later ones with the same key and body get its
-- stored answer. Keys are scoped by the caller's token name.
CREATE TABLE idempotency_keys (
    caller       TEXT NOT NULL,
    key          TEXT NOT NULL,
    request      TEXT NOT NULL,
    state        TEXT NOT NULL,
    response     TEXT,
    plugin       TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (caller, key)
);
