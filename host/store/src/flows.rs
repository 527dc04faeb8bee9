//! Deployed flows and their versions, and the schedule a deploy sets.

use sqlx::Row;

use crate::{Result, Store};

/// A flow with its current version's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRow {
    /// Name.
    pub name: String,
    /// Current version, from 1.
    pub version: i64,
    /// RFC 3339 time of the first deploy.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
    /// The current version's TOML.
    pub source: String,
}

/// A flow version as stored, without its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowVersionRow {
    /// Version number.
    pub version: i64,
    /// sha256 of the source.
    pub digest: String,
    /// RFC 3339 time.
    pub deployed_at: String,
    /// Token name.
    pub deployed_by: String,
}

/// A flow's current version and its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSource {
    /// Name.
    pub name: String,
    /// Current version.
    pub version: i64,
    /// That version's TOML.
    pub source: String,
}

/// What a deployed version does to the flow's schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleUpdate {
    /// The flow has no schedule trigger: its schedule is removed.
    Remove,
    /// The schedule fires next at this time (ms since the epoch).
    Next(i64),
    /// The flow has a schedule trigger that never fires again: a new
    /// version is refused (an unchanged one is not).
    Never,
}

/// A version to deploy.
#[derive(Debug, Clone)]
pub struct NewFlowVersion<'a> {
    /// The flow.
    pub name: &'a str,
    /// Its TOML.
    pub source: &'a str,
    /// sha256 of the source.
    pub digest: &'a str,
    /// Token name.
    pub by: &'a str,
    /// RFC 3339 time of the deploy.
    pub at: &'a str,
    /// The schedule it sets.
    pub schedule: ScheduleUpdate,
}

/// What [`Store::deploy_flow`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployOutcome {
    /// Committed.
    Stored {
        /// The flow's version now.
        version: i64,
        /// The flow did not exist before.
        created: bool,
        /// A new version was stored (false when the digest is unchanged).
        changed: bool,
    },
    /// Nothing changed: the source differs but its schedule
    /// ([`ScheduleUpdate::Never`]) never fires again.
    NeverFires,
}

impl Store {
    /// Stores `new` as the next version of its flow in one transaction:
    /// nothing changes when its digest equals the current version's;
    /// otherwise the flow's version moves on (or the flow is created), the
    /// version is inserted and the flow's schedule set as `new.schedule` says.
    pub async fn deploy_flow(&self, new: &NewFlowVersion<'_>) -> Result<DeployOutcome> {
        let name = new.name;
        let now = new.at;
        let mut tx = self.begin().await?;
        let current = sqlx::query(
            "SELECT f.version, v.digest FROM flows f JOIN flow_versions v ON v.flow = f.name AND v.version = f.version WHERE f.name = $1",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let (version, created, changed) = match current {
            Some(row) => {
                let version: i64 = row.get(0);
                let old: String = row.get(1);
                if old == new.digest {
                    (version, false, false)
                } else {
                    sqlx::query("UPDATE flows SET version = $1, updated_at = $2 WHERE name = $3")
                        .bind(version + 1)
                        .bind(now)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                    (version + 1, false, true)
                }
            }
            None => {
                sqlx::query(
                    "INSERT INTO flows (name, version, created_at, updated_at) VALUES ($1, 1, $2, $3)",
                )
                .bind(name)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                (1, true, true)
            }
        };
        if changed {
            sqlx::query(
                "INSERT INTO flow_versions (flow, version, source, digest, deployed_at, deployed_by) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(name)
            .bind(version)
            .bind(new.source)
            .bind(new.digest)
            .bind(now)
            .bind(new.by)
            .execute(&mut *tx)
            .await?;
            match new.schedule {
                ScheduleUpdate::Next(next) => {
                    sqlx::query("INSERT INTO flow_schedules (flow, next_at) VALUES ($1, $2) ON CONFLICT (flow) DO UPDATE SET next_at = excluded.next_at")
                        .bind(name)
                        .bind(next)
                        .execute(&mut *tx)
                        .await?;
                }
                // Dropping the transaction rolls it back.
                ScheduleUpdate::Never => return Ok(DeployOutcome::NeverFires),
                ScheduleUpdate::Remove => {
                    sqlx::query("DELETE FROM flow_schedules WHERE flow = $1")
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(DeployOutcome::Stored {
            version,
            created,
            changed,
        })
    }

    /// Every deployed flow with its current source, by name.
    pub async fn flows(&self) -> Result<Vec<FlowRow>> {
        let rows = sqlx::query(
            "SELECT f.name, f.version, f.created_at, f.updated_at, v.source FROM flows f JOIN flow_versions v ON v.flow = f.name AND v.version = f.version ORDER BY f.name",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(flow_from_row).collect())
    }

    /// Flow `name` with its current source.
    pub async fn flow(&self, name: &str) -> Result<Option<FlowRow>> {
        let row = sqlx::query(
            "SELECT f.name, f.version, f.created_at, f.updated_at, v.source FROM flows f JOIN flow_versions v ON v.flow = f.name AND v.version = f.version WHERE f.name = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(flow_from_row))
    }

    /// Every version of flow `name`, newest first.
    pub async fn flow_versions(&self, name: &str) -> Result<Vec<FlowVersionRow>> {
        Ok(sqlx::query(
            "SELECT version, digest, deployed_at, deployed_by FROM flow_versions WHERE flow = $1 ORDER BY version DESC",
        )
        .bind(name)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| FlowVersionRow {
            version: r.get(0),
            digest: r.get(1),
            deployed_at: r.get(2),
            deployed_by: r.get(3),
        })
        .collect())
    }

    /// The current version of flow `name` and its source.
    pub async fn current_flow(&self, name: &str) -> Result<Option<FlowSource>> {
        let row = sqlx::query(
            "SELECT f.version, v.source FROM flows f JOIN flow_versions v ON v.flow = f.name AND v.version = f.version WHERE f.name = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|row| FlowSource {
            name: name.to_string(),
            version: row.get(0),
            source: row.get(1),
        }))
    }

    /// The current version and source of every flow, by name.
    pub async fn current_flows(&self) -> Result<Vec<FlowSource>> {
        let rows = sqlx::query(
            "SELECT f.name, f.version, v.source FROM flows f JOIN flow_versions v ON v.flow = f.name AND v.version = f.version ORDER BY f.name",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|row| FlowSource {
                name: row.get(0),
                version: row.get(1),
                source: row.get(2),
            })
            .collect())
    }

    /// The source of version `version` of flow `flow`.
    pub async fn flow_source(&self, flow: &str, version: i64) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT source FROM flow_versions WHERE flow = $1 AND version = $2")
                .bind(flow)
                .bind(version)
                .fetch_optional(self.pool())
                .await?,
        )
    }
}

fn flow_from_row(row: &sqlx::any::AnyRow) -> FlowRow {
    FlowRow {
        name: row.get(0),
        version: row.get(1),
        created_at: row.get(2),
        updated_at: row.get(3),
        source: row.get(4),
    }
}
