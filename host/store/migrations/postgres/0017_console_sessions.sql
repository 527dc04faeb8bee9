-- The operator console's sign-ins: sessions (keyed by the digest of the
-- cookie's value, never the value) and one-time sign-in links (keyed by the
-- digest of the link's code, deleted when redeemed). A session belongs to an
-- API token by name; its scope is the token's, read when each request comes.
CREATE TABLE console_sessions (
    digest     TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    token_name TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
