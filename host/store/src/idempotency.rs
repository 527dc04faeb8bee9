//! `Idempotency-Key` on operation invokes, with Stripe's semantics: the first
//! request with a key runs; a later one with the same key and the same
//! request gets the stored answer without a second call; the same key with
//! another request is refused (422), and while the first is still running a
//! second is refused too (409).
//!
//! Only successful answers are stored: after an error the key is released,
//! so the client can retry with it. A key whose first request never finished
//! (the host died) is taken over once it is older than `stale`.

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{Result, Store, now_ms};

/// What to do with a request that carries an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: run it, then [`Store::finish_idempotent`] or [`Store::release_idempotent`].
    Run,
    /// Done before: answer with this (output JSON, plugin `name@version`).
    Replay {
        /// The stored output.
        response: String,
        /// The plugin version that produced it.
        plugin: String,
    },
    /// The same key was used for another request.
    Mismatch,
    /// The first request with this key is still running.
    InFlight,
}

/// The digest that identifies a request: connection, operation and body.
pub fn request_digest(connection: &str, operation: &str, body: &str) -> String {
    let mut h = Sha256::new();
    for part in [connection, operation, body] {
        h.update(part.len().to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

impl Store {
    /// Claims `key` of `caller` for `request` (see [`request_digest`]).
    pub async fn claim_idempotent(
        &self,
        caller: &str,
        key: &str,
        request: &str,
        stale: Duration,
    ) -> Result<Claim> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let stale_before = now.saturating_sub(i64::try_from(stale.as_millis()).unwrap_or(i64::MAX));
        // Take over a claim whose request never finished.
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE caller = $1 AND key = $2 AND state = 'running' AND created_at <= $3",
        )
        .bind(caller)
        .bind(key)
        .bind(stale_before)
        .execute(&mut *tx)
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (caller, key, request, state, created_at) VALUES ($1, $2, $3, 'running', $4) ON CONFLICT DO NOTHING",
        )
        .bind(caller)
        .bind(key)
        .bind(request)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let claim = if inserted.rows_affected() == 1 {
            Claim::Run
        } else {
            let row = sqlx::query(
                "SELECT request, state, response, plugin FROM idempotency_keys WHERE caller = $1 AND key = $2",
            )
            .bind(caller)
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
            let stored: String = row.get(0);
            let state: String = row.get(1);
            if stored != request {
                Claim::Mismatch
            } else if state == "done" {
                Claim::Replay {
                    response: row.get::<Option<String>, _>(2).unwrap_or_default(),
                    plugin: row.get::<Option<String>, _>(3).unwrap_or_default(),
                }
            } else {
                Claim::InFlight
            }
        };
        tx.commit().await?;
        Ok(claim)
    }

    /// Stores the answer of a claimed key.
    pub async fn finish_idempotent(
        &self,
        caller: &str,
        key: &str,
        response: &str,
        plugin: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', response = $1, plugin = $2 WHERE caller = $3 AND key = $4",
        )
        .bind(response)
        .bind(plugin)
        .bind(caller)
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Releases a claimed key after a failed request, so it can be retried.
    pub async fn release_idempotent(&self, caller: &str, key: &str) -> Result<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE caller = $1 AND key = $2 AND state = 'running'",
        )
        .bind(caller)
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
