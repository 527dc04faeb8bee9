//! Master-data governance: the versions of the governance document, and
//! the cross-system id map (`xrefs`) flows write with their steps'
//! completions and operators correct by hand.

use sqlx::Row;

use crate::audit::{Outcome, Record};
use crate::{Result, Store};

/// A deployed version of the governance document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GovernanceRow {
    /// From 1.
    pub version: i64,
    /// Its TOML.
    pub source: String,
    /// sha256 of the source.
    pub digest: String,
    /// RFC 3339 time.
    pub deployed_at: String,
    /// Token name.
    pub deployed_by: String,
}

/// One system's id of an entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XrefRow {
    /// The canonical entity, e.g. `project`.
    pub entity: String,
    /// The entity's canonical key, the same in every system.
    pub key: String,
    /// The system (connection) holding the record.
    pub system: String,
    /// The record's id there.
    pub id: String,
    /// The run whose step recorded it, if a run did.
    pub run: Option<String>,
    /// That run's flow.
    pub flow: Option<String>,
    /// `run` for a run, else the token that linked it by hand.
    pub by: String,
    /// When (ms since the epoch).
    pub at: i64,
}

/// An id recorded with a step's completion (see [`crate::RunWrite::Xref`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewXref {
    /// The canonical entity.
    pub entity: String,
    /// Its canonical key.
    pub key: String,
    /// The system (connection).
    pub system: String,
    /// The record's id there.
    pub id: String,
}

/// Inserts or replaces one system's id of an entity: entity, key, system,
/// id, run, flow, by, at.
pub(crate) const UPSERT_XREF: &str = "INSERT INTO xrefs (entity, entity_key, system, external_id, run_id, flow, recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (entity, entity_key, system) DO UPDATE SET external_id = excluded.external_id, run_id = excluded.run_id, flow = excluded.flow, recorded_by = excluded.recorded_by, recorded_at = excluded.recorded_at";

fn governance_row(row: &sqlx::any::AnyRow) -> GovernanceRow {
    GovernanceRow {
        version: row.get(0),
        source: row.get(1),
        digest: row.get(2),
        deployed_at: row.get(3),
        deployed_by: row.get(4),
    }
}

fn xref_row(row: &sqlx::any::AnyRow) -> XrefRow {
    XrefRow {
        entity: row.get(0),
        key: row.get(1),
        system: row.get(2),
        id: row.get(3),
        run: row.get(4),
        flow: row.get(5),
        by: row.get(6),
        at: row.get(7),
    }
}

impl Store {
    /// Stores `source` as the next governance version, unless its digest
    /// equals the current version's. Returns the version now current and
    /// whether it is new.
    pub async fn deploy_governance(
        &self,
        source: &str,
        digest: &str,
        by: &str,
        at: &str,
    ) -> Result<(i64, bool)> {
        let mut tx = self.begin().await?;
        let current = sqlx::query(
            "SELECT version, digest FROM governance_versions ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let next = match current {
            Some(row) if row.get::<String, _>(1) == digest => {
                return Ok((row.get(0), false));
            }
            Some(row) => row.get::<i64, _>(0) + 1,
            None => 1,
        };
        sqlx::query(
            "INSERT INTO governance_versions (version, source, digest, deployed_at, deployed_by) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(next)
        .bind(source)
        .bind(digest)
        .bind(at)
        .bind(by)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((next, true))
    }

    /// The current governance version (the highest), if one was deployed.
    pub async fn governance(&self) -> Result<Option<GovernanceRow>> {
        let row = sqlx::query(
            "SELECT version, source, digest, deployed_at, deployed_by FROM governance_versions ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(governance_row))
    }

    /// The current governance version's number, if one was deployed.
    pub async fn governance_version(&self) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT MAX(version) FROM governance_versions")
            .fetch_one(self.pool())
            .await?;
        Ok(row.get::<Option<i64>, _>(0))
    }

    /// Every governance version, newest first (their sources included).
    pub async fn governance_versions(&self) -> Result<Vec<GovernanceRow>> {
        let rows = sqlx::query(
            "SELECT version, source, digest, deployed_at, deployed_by FROM governance_versions ORDER BY version DESC",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(governance_row).collect())
    }

    /// Every system's id of `entity` `key`, by system.
    pub async fn xref(&self, entity: &str, key: &str) -> Result<Vec<XrefRow>> {
        let rows = sqlx::query(
            "SELECT entity, entity_key, system, external_id, run_id, flow, recorded_by, recorded_at FROM xrefs WHERE entity = $1 AND entity_key = $2 ORDER BY system",
        )
        .bind(entity)
        .bind(key)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(xref_row).collect())
    }

    /// The keys of `entity` whose record in `system` is `id` (one, unless
    /// two keys were given the same record).
    pub async fn xref_keys(&self, entity: &str, system: &str, id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT entity_key FROM xrefs WHERE entity = $1 AND system = $2 AND external_id = $3 ORDER BY entity_key",
        )
        .bind(entity)
        .bind(system)
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Links (with `Some(id)`) or unlinks `entity` `key` in `system` by
    /// hand, audited in the same transaction. Returns whether a link was
    /// there before.
    pub async fn put_xref(
        &self,
        entity: &str,
        key: &str,
        system: &str,
        id: Option<&str>,
        by: &str,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let before = sqlx::query(
            "SELECT external_id FROM xrefs WHERE entity = $1 AND entity_key = $2 AND system = $3",
        )
        .bind(entity)
        .bind(key)
        .bind(system)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.get::<String, _>(0));
        match id {
            Some(id) => {
                sqlx::query(UPSERT_XREF)
                    .bind(entity)
                    .bind(key)
                    .bind(system)
                    .bind(id)
                    .bind(None::<String>)
                    .bind(None::<String>)
                    .bind(by)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query(
                    "DELETE FROM xrefs WHERE entity = $1 AND entity_key = $2 AND system = $3",
                )
                .bind(entity)
                .bind(key)
                .bind(system)
                .execute(&mut *tx)
                .await?;
            }
        }
        let target = format!("{entity}/{key}/{system}");
        let detail = match (&before, id) {
            (Some(old), Some(new)) => format!("id {old} -> {new}"),
            (None, Some(new)) => format!("id {new}"),
            (Some(old), None) => format!("unlinked id {old}"),
            (None, None) => "no link to remove".to_string(),
        };
        let action = if id.is_some() {
            "xref.link"
        } else {
            "xref.unlink"
        };
        let record = Record {
            actor: by,
            action,
            target: &target,
            digest: None,
            outcome: Outcome::Ok,
            detail: &detail,
        };
        crate::audit::insert(&mut tx, &record).await?;
        tx.commit().await?;
        Ok(before.is_some())
    }
}
