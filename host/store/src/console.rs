//! The operator console's sign-ins: sessions and one-time sign-in links.
//!
//! Only digests of the cookie values and link codes are stored, so a copy
//! of the database signs nobody in. A session names the API token it was
//! opened with; the API reads that token's scope at each request, so a token
//! removed by a reload ends its sessions.

use sqlx::Row;

use crate::{Result, Store};

/// Whether a row is a signed-in session or a link that opens one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleKind {
    /// A session: the digest of its cookie's value.
    Session,
    /// A one-time sign-in link: the digest of its code.
    Link,
}

impl ConsoleKind {
    fn as_str(self) -> &'static str {
        match self {
            ConsoleKind::Session => "session",
            ConsoleKind::Link => "link",
        }
    }
}

/// A console session or link as stored (times in ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// The sha256 hex digest of the cookie's value or the link's code.
    pub digest: String,
    /// Session or link.
    pub kind: ConsoleKind,
    /// The API token it acts as.
    pub token_name: String,
    /// The CSRF token every state change of the session must carry.
    pub csrf: String,
    /// When it was made.
    pub created_at: i64,
    /// When it stops working.
    pub expires_at: i64,
}

fn session_row(row: &sqlx::any::AnyRow, digest: &str, kind: ConsoleKind) -> ConsoleSession {
    ConsoleSession {
        digest: digest.to_string(),
        kind,
        token_name: row.get(0),
        csrf: row.get(1),
        created_at: row.get(2),
        expires_at: row.get(3),
    }
}

impl Store {
    /// Stores a session or link, and forgets every expired one.
    pub async fn open_console_session(&self, session: &ConsoleSession) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(session.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (digest, kind, token_name, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&session.digest)
        .bind(session.kind.as_str())
        .bind(&session.token_name)
        .bind(&session.csrf)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The unexpired session whose cookie has `digest`.
    pub async fn console_session(&self, digest: &str, now: i64) -> Result<Option<ConsoleSession>> {
        let row = sqlx::query(
            "SELECT token_name, csrf, created_at, expires_at FROM console_sessions WHERE digest = $1 AND kind = 'session' AND expires_at > $2",
        )
        .bind(digest)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| session_row(&r, digest, ConsoleKind::Session)))
    }

    /// Deletes the unexpired link whose code has `digest` and returns it:
    /// a link opens one session, once, on whichever host redeems it first.
    pub async fn redeem_console_link(
        &self,
        digest: &str,
        now: i64,
    ) -> Result<Option<ConsoleSession>> {
        let row = sqlx::query(
            "DELETE FROM console_sessions WHERE digest = $1 AND kind = 'link' AND expires_at > $2 RETURNING token_name, csrf, created_at, expires_at",
        )
        .bind(digest)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| session_row(&r, digest, ConsoleKind::Link)))
    }

    /// Ends the session whose cookie has `digest`; whether there was one.
    pub async fn end_console_session(&self, digest: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM console_sessions WHERE digest = $1 AND kind = 'session'")
                .bind(digest)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() > 0)
    }
}
