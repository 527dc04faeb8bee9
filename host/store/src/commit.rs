//! The group committer: fenced write batches from many workers applied in
//! one transaction and made durable by one commit.
//!
//! On SQLite with `synchronous=FULL` every commit waits for an fsync, so a
//! worker that commits each step on its own is capped by the disk. Workers
//! instead hand their writes to one committer task as a [`Batch`]; it
//! applies every batch that is waiting in one transaction, each inside its
//! own `SAVEPOINT`, commits once, and only then answers every worker.
//!
//! A batch's first statement is its fence, an `UPDATE ... RETURNING id` that
//! must change one row (the run the worker still holds the lease of, or the
//! run a claim takes). When it changes none, or when any statement of the
//! batch fails, the batch is rolled back to its savepoint alone: the other
//! batches of the group are unaffected. Nothing is acknowledged before the
//! commit: when the commit fails, every batch of the group is answered with
//! the error.

use std::time::Instant;

use prometheus_client::metrics::histogram::Histogram;
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use crate::{self as store, Error, Result};

/// One bound value.
#[derive(Debug, Clone)]
pub enum Arg {
    /// An integer.
    Int(i64),
    /// A text value.
    Text(String),
    /// SQL `NULL` (as text).
    Null,
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}

impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        v.map_or(Arg::Null, Arg::Text)
    }
}

/// One statement with `$N` placeholders and its values.
#[derive(Debug, Clone)]
pub struct Statement {
    sql: &'static str,
    args: Vec<Arg>,
}

impl Statement {
    /// `sql` with no values yet.
    pub fn new(sql: &'static str) -> Statement {
        Statement {
            sql,
            args: Vec::new(),
        }
    }

    /// Binds the next placeholder.
    #[must_use]
    pub fn bind(mut self, value: impl Into<Arg>) -> Statement {
        self.args.push(value.into());
        self
    }

    fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
        let mut q = sqlx::query(self.sql);
        for a in &self.args {
            q = match a {
                Arg::Int(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.as_str()),
                Arg::Null => q.bind(None::<String>),
            };
        }
        q
    }
}

/// The writes of one worker that stand or fall together: a fence
/// (`UPDATE ... RETURNING id`, which must return a row) and what follows it.
#[derive(Debug, Clone)]
pub struct Batch {
    fence: Statement,
    writes: Vec<Statement>,
    /// Whether a write adds an event to the outbox.
    emits: bool,
}

impl Batch {
    /// A batch fenced by `fence`.
    pub fn new(fence: Statement) -> Batch {
        Batch {
            fence,
            writes: Vec::new(),
            emits: false,
        }
    }

    /// Adds a write applied after the fence held.
    #[must_use]
    pub fn then(mut self, write: Statement) -> Batch {
        self.writes.push(write);
        self
    }

    /// Adds `event` to the outbox after the fence held.
    #[must_use]
    pub fn emit(mut self, event: &crate::CloudEvent) -> Batch {
        self.writes.push(crate::events::insert_statement(event));
        self.emits = true;
        self
    }
}

type Reply = oneshot::Sender<Result<Option<String>>>;

/// A handle to the committer task; it ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct GroupCommitter {
    tx: mpsc::UnboundedSender<(Batch, Reply)>,
}

impl GroupCommitter {
    /// Starts a committer over `store` on the current Tokio runtime.
    pub fn start(store: &store::Store) -> GroupCommitter {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(
            store.pool().clone(),
            store.backend(),
            store.commit_seconds(),
            store.events_written(),
            rx,
        ));
        GroupCommitter { tx }
    }

    /// Applies `batch` in the next group and waits until that group is
    /// committed. `Ok(Some(id))`: the fence held (the id it returned) and
    /// every write is durable; `Ok(None)`: the fence changed nothing, and
    /// neither did the batch; `Err`: a statement or the commit failed, and
    /// the batch changed nothing.
    pub async fn apply(&self, batch: Batch) -> Result<Option<String>> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((batch, reply))
            .map_err(|_| closed("the group committer has stopped"))?;
        answer
            .await
            .map_err(|_| closed("the group committer stopped before answering"))?
    }
}

fn closed(message: &str) -> Error {
    Error::Database(sqlx::Error::Protocol(message.to_string()))
}

/// A histogram of commit latencies in seconds, from 0.5 ms to about 4 s.
pub(crate) fn commit_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0005, 2.0, 14,
    ))
}

/// The most batches applied in one transaction.
const MAX_GROUP: usize = 256;

async fn run(
    pool: AnyPool,
    backend: store::Backend,
    commit_seconds: Histogram,
    events_written: std::sync::Arc<tokio::sync::Notify>,
    mut rx: mpsc::UnboundedReceiver<(Batch, Reply)>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        let answers = apply_group(&pool, backend, &commit_seconds, &group).await;
        let emitted = group
            .iter()
            .zip(&answers)
            .any(|((batch, _), answer)| batch.emits && matches!(answer, Ok(Some(_))));
        if emitted {
            events_written.notify_one();
        }
        for ((_, reply), answer) in group.drain(..).zip(answers) {
            // A worker that stopped waiting no longer needs the answer.
            let _ = reply.send(answer);
        }
    }
}

/// Applies `group` in one transaction; one answer per batch, in order.
async fn apply_group(
    pool: &AnyPool,
    backend: store::Backend,
    commit_seconds: &Histogram,
    group: &[(Batch, Reply)],
) -> Vec<Result<Option<String>>> {
    let mut tx = match store::begin_write(pool, backend).await {
        Ok(tx) => tx,
        Err(e) => {
            let message = format!("the group commit could not begin: {e}");
            return group.iter().map(|_| Err(closed(&message))).collect();
        }
    };
    let mut outcomes: Vec<std::result::Result<Option<String>, String>> =
        Vec::with_capacity(group.len());
    for (batch, _) in group {
        match apply_batch(&mut tx, batch).await {
            Ok(outcome) => outcomes.push(outcome),
            Err(broken) => {
                // The savepoints themselves failed: nothing of the group is
                // trusted. Dropping the transaction rolls it back.
                drop(tx);
                let message = format!("the group commit was rolled back: {broken}");
                return group.iter().map(|_| Err(closed(&message))).collect();
            }
        }
    }
    let started = Instant::now();
    let committed = tx.commit().await;
    commit_seconds.observe(started.elapsed().as_secs_f64());
    match committed {
        Ok(()) => outcomes
            .into_iter()
            .map(|o| o.map_err(|m| closed(&m)))
            .collect(),
        Err(e) => {
            let message = format!("the group commit failed: {e}");
            group.iter().map(|_| Err(closed(&message))).collect()
        }
    }
}

/// One batch inside its savepoint. The inner `Err` carries a statement's
/// error; the savepoint is rolled back then, and when the fence returned
/// nothing. The outer `Err`: a savepoint statement failed, the transaction
/// cannot be trusted.
async fn apply_batch(
    tx: &mut store::Transaction,
    batch: &Batch,
) -> std::result::Result<std::result::Result<Option<String>, String>, String> {
    sqlx::query("SAVEPOINT batch")
        .execute(&mut **tx)
        .await
        .map_err(|e| format!("savepoint: {e}"))?;
    let applied: std::result::Result<Option<String>, sqlx::Error> = async {
        let Some(id) = batch
            .fence
            .query()
            .fetch_optional(&mut **tx)
            .await?
            .map(|row| sqlx::Row::try_get::<String, _>(&row, 0))
            .transpose()?
        else {
            return Ok(None);
        };
        for w in &batch.writes {
            w.query().execute(&mut **tx).await?;
        }
        Ok(Some(id))
    }
    .await;
    let end = match &applied {
        Ok(Some(_)) => "RELEASE SAVEPOINT batch",
        _ => "ROLLBACK TO SAVEPOINT batch",
    };
    sqlx::query(end)
        .execute(&mut **tx)
        .await
        .map_err(|e| format!("ending a savepoint: {e}"))?;
    if !matches!(applied, Ok(Some(_))) {
        // ROLLBACK TO keeps the savepoint open; release it too.
        sqlx::query("RELEASE SAVEPOINT batch")
            .execute(&mut **tx)
            .await
            .map_err(|e| format!("releasing a savepoint: {e}"))?;
    }
    Ok(applied.map_err(|e| e.to_string()))
}
