-- The outbox: every CloudEvent the host emits or passes on, written in the
-- same transaction as the state change it describes, then published to NATS
-- JetStream (when configured) and readable as a feed. `source` and `id`
-- identify an event (CloudEvents 1.0); `seq` orders the feed. SQLite
-- serialises writers, so commit order is `seq` order and `txid` stays 0.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    txid         BIGINT NOT NULL DEFAULT 0,
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
