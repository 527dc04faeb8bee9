-- Uploaded packages, content-addressed by their package digest.
CREATE TABLE packages (
    digest TEXT PRIMARY KEY NOT NULL,
    bytes  BYTEA NOT NULL
);

-- Every plugin version the host has accepted, and which package holds it.
CREATE TABLE plugin_versions (
    name             TEXT COLLATE "C" NOT NULL,
    version          TEXT NOT NULL,
    world            TEXT NOT NULL,
    component_digest TEXT NOT NULL,
    package_digest   TEXT NOT NULL REFERENCES packages(digest),
    signer           TEXT,
    uploaded_at      TEXT NOT NULL,
    uploaded_by      TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

-- The active version of each plugin, and the versions it replaced (for rollback).
CREATE TABLE plugin_activations (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT NOT NULL,
    version      TEXT NOT NULL,
    activated_at TEXT NOT NULL,
    activated_by TEXT NOT NULL
);
CREATE INDEX plugin_activations_name ON plugin_activations (name, seq);

-- The audit log: append-only.
CREATE TABLE audit (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    digest  TEXT,
    outcome TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
