-- Connections: which plugin a connection runs, its settings and credentials.
CREATE TABLE connections (
    name          TEXT PRIMARY KEY NOT NULL,
    plugin        TEXT NOT NULL,
    version       TEXT,
    config        TEXT NOT NULL,
    auth          TEXT,
    allowed_hosts TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- Plugin state, scoped to (plugin, connection).
CREATE TABLE kv (
    plugin     TEXT NOT NULL,
    connection TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      BLOB NOT NULL,
    PRIMARY KEY (plugin, connection, key)
);
