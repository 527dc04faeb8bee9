-- PostgreSQL version of the SQLite migration with the same number: the same
-- tables and columns, with PostgreSQL's types (BYTEA for blobs, BIGINT for
-- every integer the host reads as i64). Names the host sorts by compare
-- bytewise (COLLATE "C"), as in SQLite, whatever the database's collation.

-- Connections: which plugin a connection runs, its settings and credentials.
CREATE TABLE connections (
    name          TEXT COLLATE "C" PRIMARY KEY NOT NULL,
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
    key        TEXT COLLATE "C" NOT NULL,
    value      BYTEA NOT NULL,
    PRIMARY KEY (plugin, connection, key)
);
