-- The outbox: every CloudEvent the host emits or passes on, written in the
-- same transaction as the state change it describes, then published to NATS
-- JetStream (when configured) and readable as a feed. `source` and `id`
-- identify an event (CloudEvents 1.0). Concurrent transactions take `seq`
-- values in one order and may commit in another, so the feed is ordered by
-- the writing transaction's id, then `seq`, and shows only rows of
-- transactions older than every transaction still running: a reader never
-- moves its cursor past an event that commits later.
CREATE TABLE events (
    seq          BIGSERIAL PRIMARY KEY,
    txid         BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text)::bigint,
    id           TEXT NOT NULL,
    source       TEXT NOT NULL,
    type         TEXT NOT NULL,
    subject      TEXT,
    time         TEXT NOT NULL,
    data         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    published_at BIGINT,
    UNIQUE (source, id)
);
CREATE INDEX events_unpublished ON events (seq) WHERE published_at IS NULL;
CREATE INDEX events_feed ON events (txid, seq);
