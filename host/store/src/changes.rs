//! Change notices between the hosts sharing a PostgreSQL database: a host
//! that changed plugins or connections says so on the `junction_changes`
//! channel (`NOTIFY`), and every host listening brings its caches in line
//! with the store. Notices are hints: what changed is always read back from
//! the tables, so a lost notice costs only time, and a lost connection is
//! reported as [`Change::Unknown`] (read everything again). SQLite serves
//! one host and has no channel.

use sqlx::postgres::PgListener;

use crate::{Backend, Error, Result, Store};

/// The channel the hosts notify and listen on.
const CHANNEL: &str = "junction_changes";

/// What another host changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Plugin versions: an upload, activation, rollback or delete.
    Plugins,
    /// A connection.
    Connections,
    /// Unknown: notices may have been missed (the listener reconnected).
    Unknown,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Change::Plugins => "plugins",
            Change::Connections => "connections",
            Change::Unknown => "unknown",
        }
    }

    fn parse(payload: &str) -> Change {
        match payload {
            "plugins" => Change::Plugins,
            "connections" => Change::Connections,
            _ => Change::Unknown,
        }
    }
}

/// The notices of the other hosts (and this one's own).
pub struct ChangeFeed {
    listener: PgListener,
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed").finish_non_exhaustive()
    }
}

impl ChangeFeed {
    /// The next notice; [`Change::Unknown`] after the connection was lost
    /// and made again (notices sent meanwhile are gone).
    pub async fn next(&mut self) -> Result<Change> {
        match self.listener.try_recv().await? {
            Some(notice) => Ok(Change::parse(notice.payload())),
            None => Ok(Change::Unknown),
        }
    }
}

impl Store {
    /// Tells the other hosts that `change` happened (nothing on SQLite).
    pub async fn announce(&self, change: Change) -> Result<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(change.as_str())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Listens for the hosts' notices; `None` on SQLite.
    pub async fn changes(&self) -> Result<Option<ChangeFeed>> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        let mut listener = PgListener::connect(url).await.map_err(Error::Database)?;
        listener.listen(CHANNEL).await?;
        Ok(Some(ChangeFeed { listener }))
    }
}
