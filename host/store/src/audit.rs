//! The audit log: who did what to which plugin, connection or flow, when,
//! with the digest involved. Append-only: the database refuses updates and
//! deletes of its rows.

use serde::Serialize;
use sqlx::Row;

use crate::{Result, Store};

/// Whether the audited action happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It happened.
    Ok,
    /// It was refused; `detail` says why.
    Refused,
}

impl Outcome {
    /// `Ok` for an `Ok` result, `Refused` for an error.
    pub fn of<T, E>(result: &std::result::Result<T, E>) -> Outcome {
        if result.is_ok() {
            Outcome::Ok
        } else {
            Outcome::Refused
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
        }
    }
}

/// One audit record.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Entry {
    /// Increasing id.
    pub id: i64,
    /// RFC 3339 time.
    pub at: String,
    /// Token name (or `host` for the host's own actions, `watcher` for the plugin directory).
    pub actor: String,
    /// What was done, e.g. `plugin.upload`, `plugin.activate`, `connection.put`.
    pub action: String,
    /// What it was done to, e.g. `jira@1.2.0`.
    pub target: String,
    /// The digest involved, if any.
    pub digest: Option<String>,
    /// Whether it happened.
    pub outcome: Outcome,
    /// Why it was refused, or extra detail.
    pub detail: String,
}

/// A record to append.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    /// See [`Entry::actor`].
    pub actor: &'a str,
    /// See [`Entry::action`].
    pub action: &'a str,
    /// See [`Entry::target`].
    pub target: &'a str,
    /// See [`Entry::digest`].
    pub digest: Option<&'a str>,
    /// See [`Entry::outcome`].
    pub outcome: Outcome,
    /// See [`Entry::detail`].
    pub detail: &'a str,
}

impl Store {
    /// Logs `record` (at info: every lifecycle action is in the log with
    /// its actor and digest) and appends it, logging a failure to write it
    /// rather than failing the action it records (which has already
    /// happened, or been refused).
    pub async fn audit_or_log(&self, record: Record<'_>) {
        let (action, target) = (record.action, record.target);
        tracing::info!(
            actor = record.actor,
            action,
            target,
            digest = record.digest.unwrap_or_default(),
            outcome = record.outcome.as_str(),
            detail = record.detail,
            "{action} {target}"
        );
        if let Err(err) = self.audit(record).await {
            tracing::error!(%err, action, target, "could not write the audit log");
        }
    }

    /// Appends an audit record.
    pub async fn audit(&self, record: Record<'_>) -> Result<()> {
        let mut conn = self.pool().acquire().await?;
        insert(&mut conn, &record).await
    }

    /// The newest `limit` records (optionally of one action), newest first.
    pub async fn audit_entries(&self, action: Option<&str>, limit: u32) -> Result<Vec<Entry>> {
        let rows = sqlx::query(
            "SELECT * FROM audit WHERE ($1 IS NULL OR action = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(action)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| Entry {
                id: r.get("id"),
                at: r.get("at"),
                actor: r.get("actor"),
                action: r.get("action"),
                target: r.get("target"),
                digest: r.get("digest"),
                outcome: if r.get::<String, _>("outcome") == "ok" {
                    Outcome::Ok
                } else {
                    Outcome::Refused
                },
                detail: r.get("detail"),
            })
            .collect())
    }
}

/// Appends `record` on `conn` (a connection, or a transaction whose change
/// it describes).
pub(crate) async fn insert(conn: &mut sqlx::AnyConnection, record: &Record<'_>) -> Result<()> {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    sqlx::query(
        "INSERT INTO audit (at, actor, action, target, digest, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(at)
    .bind(record.actor)
    .bind(record.action)
    .bind(record.target)
    .bind(record.digest)
    .bind(record.outcome.as_str())
    .bind(record.detail)
    .execute(conn)
    .await?;
    Ok(())
}
