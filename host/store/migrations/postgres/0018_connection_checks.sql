-- The last `check` of each connection (by an operator or a circuit probe),
-- on any host: when, and whether the remote system answered as expected.
CREATE TABLE connection_checks (
    connection TEXT PRIMARY KEY,
    checked_at BIGINT NOT NULL,
    ok         BIGINT NOT NULL,
    message    TEXT
);
