//! The outbox: every event the host emits or passes on, as a CloudEvent 1.0,
//! written in the same transaction as the state change it describes.
//!
//! A publisher (`junction_flows::events`) sends the rows that are not yet
//! published to NATS JetStream and marks them; the API reads them as a feed
//! (`GET /v1/events?after=<cursor>`). A row is marked only after JetStream
//! acknowledged it, so a host killed in between publishes it again on
//! restart, under the same `Nats-Msg-Id`, and JetStream drops the copy.
//!
//! The feed's cursor is `<txid>.<seq>`. On SQLite writers are serialised,
//! so `seq` alone is commit order (and `txid` is 0). On PostgreSQL two
//! transactions may take `seq` values in one order and commit in the other;
//! the feed is therefore ordered by the writing transaction's id, then
//! `seq`, and holds back rows of any transaction not older than the oldest
//! one still running, so a reader never moves its cursor past an event that
//! commits later.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::commit::Statement;
use crate::{Backend, Result, Store, Transaction, now_ms};

/// The CloudEvents `type`s the host emits, all under `dev.junction.`.
pub mod types {
    /// A run was started (by hand, a schedule or a webhook event).
    pub const RUN_STARTED: &str = "dev.junction.run.started";
    /// A step of a run completed.
    pub const STEP_COMPLETED: &str = "dev.junction.step.completed";
    /// A run completed every step.
    pub const RUN_COMPLETED: &str = "dev.junction.run.completed";
    /// A run failed for good with nothing to compensate.
    pub const RUN_FAILED: &str = "dev.junction.run.failed";
    /// A run failed for good and its completed steps were compensated.
    pub const RUN_COMPENSATED: &str = "dev.junction.run.compensated";
    /// A run that failed for good left a dead letter.
    pub const RUN_DEAD_LETTERED: &str = "dev.junction.run.dead_lettered";
}

/// The CloudEvents version every event is written in.
pub const SPECVERSION: &str = "1.0";

/// An event in the CloudEvents 1.0 structured JSON format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CloudEvent {
    /// Always `1.0`.
    #[schema(example = "1.0")]
    pub specversion: String,
    /// Unique per `source`.
    pub id: String,
    /// The system and tenant the event came from (a URI reference); the
    /// host's own events have `/flows/<flow>`.
    pub source: String,
    /// What happened: `dev.junction.run.completed`, or the sending system's
    /// type for an event a webhook delivered.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The object the event is about, if any (for the host's events, the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// RFC 3339 time at which it happened.
    pub time: String,
    /// Always `application/json`.
    #[schema(example = "application/json")]
    pub datacontenttype: String,
    /// The payload.
    pub data: serde_json::Value,
}

impl CloudEvent {
    /// An event with JSON `data`.
    pub fn new(
        id: String,
        source: String,
        event_type: String,
        subject: Option<String>,
        time: String,
        data: serde_json::Value,
    ) -> CloudEvent {
        CloudEvent {
            specversion: SPECVERSION.to_string(),
            id,
            source,
            event_type,
            subject,
            time,
            datacontenttype: "application/json".to_string(),
            data,
        }
    }

    /// One of the host's own events, now, with a new id.
    pub fn of_host(
        source: String,
        event_type: &str,
        subject: &str,
        data: serde_json::Value,
    ) -> CloudEvent {
        CloudEvent::new(
            uuid::Uuid::new_v4().to_string(),
            source,
            event_type.to_string(),
            Some(subject.to_string()),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            data,
        )
    }

    /// One of the host's events about run `run` of flow `flow`, now, with
    /// a new id.
    pub fn of_run(event_type: &str, flow: &str, run: &str, data: serde_json::Value) -> CloudEvent {
        CloudEvent::of_host(format!("/flows/{flow}"), event_type, run, data)
    }
}

/// Where a reader of the feed is: after the event with this cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cursor {
    txid: i64,
    seq: i64,
}

impl Cursor {
    /// The cursor as text, `<txid>.<seq>`.
    pub fn parse(text: &str) -> Option<Cursor> {
        let (txid, seq) = text.split_once('.')?;
        Some(Cursor {
            txid: txid.parse().ok().filter(|v: &i64| *v >= 0)?,
            seq: seq.parse().ok().filter(|v: &i64| *v >= 0)?,
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.txid, self.seq)
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// Its place in the feed.
    pub cursor: Cursor,
    /// The event.
    pub event: CloudEvent,
    /// When JetStream acknowledged it (ms since the epoch), if it did.
    pub published_at: Option<i64>,
}

impl EventRow {
    /// The row's number, for [`Store::mark_published`].
    pub fn seq(&self) -> i64 {
        self.cursor.seq
    }
}

const INSERT: &str = "INSERT INTO events (id, source, type, subject, time, data, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (source, id) DO NOTHING";

/// The statement that writes `event` (once per source and id).
pub(crate) fn insert_statement(event: &CloudEvent) -> Statement {
    Statement::new(INSERT)
        .bind(event.id.as_str())
        .bind(event.source.as_str())
        .bind(event.event_type.as_str())
        .bind(event.subject.clone())
        .bind(event.time.as_str())
        .bind(event.data.to_string())
        .bind(now_ms())
}

/// Writes `event` inside `tx` (once per source and id).
pub(crate) async fn insert_event(tx: &mut Transaction, event: &CloudEvent) -> Result<()> {
    sqlx::query(INSERT)
        .bind(event.id.as_str())
        .bind(event.source.as_str())
        .bind(event.event_type.as_str())
        .bind(event.subject.as_deref())
        .bind(event.time.as_str())
        .bind(event.data.to_string())
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn event_row(row: &sqlx::any::AnyRow) -> Result<EventRow> {
    let data: String = row.try_get("data")?;
    Ok(EventRow {
        cursor: Cursor {
            txid: row.try_get("txid")?,
            seq: row.try_get("seq")?,
        },
        event: CloudEvent::new(
            row.try_get("id")?,
            row.try_get("source")?,
            row.try_get("type")?,
            row.try_get("subject")?,
            row.try_get("time")?,
            serde_json::from_str(&data)?,
        ),
        published_at: row.try_get("published_at")?,
    })
}

impl Store {
    /// Writes `events` that no other state change carries (a webhook's
    /// events that start no run), once per source and id.
    pub async fn record_events(&self, events: &[CloudEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for event in events {
            insert_event(&mut tx, event).await?;
        }
        tx.commit().await?;
        self.events_written.notify_one();
        Ok(())
    }

    /// Up to `limit` events of the feed after `after` (from the start
    /// without one), in feed order.
    pub async fn events_after(&self, after: Option<Cursor>, limit: u32) -> Result<Vec<EventRow>> {
        let after = after.unwrap_or_default();
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT seq, txid, id, source, type, subject, time, data, published_at FROM events \
                 WHERE (txid, seq) > ($1, $2) ORDER BY txid, seq LIMIT $3"
            }
            Backend::Postgres => {
                "SELECT seq, txid, id, source, type, subject, time, data, published_at FROM events \
                 WHERE (txid, seq) > ($1, $2) \
                 AND txid < (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint \
                 ORDER BY txid, seq LIMIT $3"
            }
        };
        sqlx::query(sql)
            .bind(after.txid)
            .bind(after.seq)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(event_row)
            .collect()
    }

    /// Up to `limit` events JetStream has not acknowledged, oldest first.
    pub async fn unpublished_events(&self, limit: u32) -> Result<Vec<EventRow>> {
        sqlx::query(
            "SELECT seq, txid, id, source, type, subject, time, data, published_at FROM events \
             WHERE published_at IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(event_row)
        .collect()
    }

    /// JetStream acknowledged the events numbered `seqs` at `at`.
    pub async fn mark_published(&self, seqs: &[i64], at: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        for seq in seqs {
            sqlx::query("UPDATE events SET published_at = $1 WHERE seq = $2")
                .bind(at)
                .bind(*seq)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes the events written before `before` (ms since the epoch):
    /// only those already published when `published_only`. Returns how many.
    pub async fn prune_events(&self, before: i64, published_only: bool) -> Result<u64> {
        let sql = if published_only {
            "DELETE FROM events WHERE created_at < $1 AND published_at IS NOT NULL"
        } else {
            "DELETE FROM events WHERE created_at < $1"
        };
        let mut tx = self.begin().await?;
        let deleted = sqlx::query(sql).bind(before).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(deleted.rows_affected())
    }

    /// Woken after this process wrote events (other hosts' events are
    /// found by polling).
    pub fn events_written(&self) -> Arc<tokio::sync::Notify> {
        self.events_written.clone()
    }
}
