-- Master-data governance: the versions of the governance document (which
-- system owns which field of each canonical entity), and the cross-system
-- id map (which record in each system is the same customer, project, ...).
CREATE TABLE governance_versions (
    version     BIGINT PRIMARY KEY,
    source      TEXT NOT NULL,
    digest      TEXT NOT NULL,
    deployed_at TEXT NOT NULL,
    deployed_by TEXT NOT NULL
);
-- One row per (entity, canonical key, system): the record's id there, and
-- the run (or operator) that recorded it.
CREATE TABLE xrefs (
    entity      TEXT NOT NULL,
    entity_key  TEXT NOT NULL,
    system      TEXT NOT NULL,
    external_id TEXT NOT NULL,
    run_id      TEXT,
    flow        TEXT,
    recorded_by TEXT NOT NULL,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (entity, entity_key, system)
);
CREATE INDEX xrefs_by_id ON xrefs (entity, system, external_id);
