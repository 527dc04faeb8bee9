-- What each plugin's kv holds on each connection, kept in step with `kv` by
-- the store's writes, so that the per-connection quota (keys and bytes) is
-- checked without counting the rows on every write. Bytes are the key's
-- length plus the value's.
CREATE TABLE kv_usage (
    plugin     TEXT NOT NULL,
    connection TEXT NOT NULL,
    keys       BIGINT NOT NULL,
    bytes      BIGINT NOT NULL,
    PRIMARY KEY (plugin, connection)
);
INSERT INTO kv_usage (plugin, connection, keys, bytes)
    SELECT plugin, connection, COUNT(*), SUM(length(key) + length(value))
    FROM kv GROUP BY plugin, connection;
