//! Plugin key-value state, scoped by plugin and connection.

use sqlx::Row;

use crate::{Error, Result, Store, Transaction};

/// How much one plugin's kv may hold on one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvQuota {
    /// Keys.
    pub keys: i64,
    /// Bytes: each key's length plus its value's.
    pub bytes: i64,
}

impl KvQuota {
    /// No quota.
    pub const UNLIMITED: KvQuota = KvQuota {
        keys: i64::MAX,
        bytes: i64::MAX,
    };
}

/// What one plugin's kv holds on one connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvUsage {
    /// Keys.
    pub keys: i64,
    /// Bytes: each key's length plus its value's.
    pub bytes: i64,
}

/// A kv write refused because the connection's kv would exceed its quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "kv quota: this connection's kv holds {} keys and {} bytes; the quota is {} keys and {} bytes \
     (the {what} would be exceeded); delete keys, or ask the operator to raise `[limits] kv_{what}`",
    usage.keys, usage.bytes, quota.keys, quota.bytes
)]
pub struct KvOverQuota {
    /// What the kv held before the refused write.
    pub usage: KvUsage,
    /// The quota.
    pub quota: KvQuota,
    /// `keys` or `bytes`.
    pub what: &'static str,
}

/// The bytes one entry counts against the quota.
fn entry_size(key: &str, value: &[u8]) -> i64 {
    i64::try_from(key.len() + value.len()).unwrap_or(i64::MAX)
}

/// Creates the connection's usage row when missing and locks it for the
/// rest of `tx` (SQLite's write transactions are serialised anyway).
async fn lock_usage(tx: &mut Transaction, plugin: &str, connection: &str) -> Result<KvUsage> {
    sqlx::query(
        "INSERT INTO kv_usage (plugin, connection, keys, bytes) VALUES ($1, $2, 0, 0)
         ON CONFLICT(plugin, connection) DO NOTHING",
    )
    .bind(plugin)
    .bind(connection)
    .execute(&mut **tx)
    .await?;
    let row = sqlx::query(
        "UPDATE kv_usage SET keys = keys WHERE plugin = $1 AND connection = $2 RETURNING keys, bytes",
    )
    .bind(plugin)
    .bind(connection)
    .fetch_one(&mut **tx)
    .await?;
    Ok(KvUsage {
        keys: row.get("keys"),
        bytes: row.get("bytes"),
    })
}

/// The bytes the stored entry of `key` counts, if there is one.
async fn stored_size(
    tx: &mut Transaction,
    plugin: &str,
    connection: &str,
    key: &str,
) -> Result<Option<i64>> {
    // The length only: the value itself (up to a MiB) need not be read.
    let row = sqlx::query(
        "SELECT CAST(length(value) AS BIGINT) AS n FROM kv
         WHERE plugin = $1 AND connection = $2 AND key = $3",
    )
    .bind(plugin)
    .bind(connection)
    .bind(key)
    .fetch_optional(&mut **tx)
    .await?;
    let key_bytes = i64::try_from(key.len()).unwrap_or(i64::MAX);
    Ok(row.map(|r| key_bytes.saturating_add(r.get::<i64, _>("n"))))
}

async fn add_usage(
    tx: &mut Transaction,
    plugin: &str,
    connection: &str,
    keys: i64,
    bytes: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE kv_usage SET keys = keys + $3, bytes = bytes + $4 WHERE plugin = $1 AND connection = $2",
    )
    .bind(plugin)
    .bind(connection)
    .bind(keys)
    .bind(bytes)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// The value of a plugin's key on a connection.
    pub async fn kv_get(
        &self,
        plugin: &str,
        connection: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>> {
        let row =
            sqlx::query("SELECT value FROM kv WHERE plugin = $1 AND connection = $2 AND key = $3")
                .bind(plugin)
                .bind(connection)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.get::<Vec<u8>, _>("value")))
    }

    /// Sets a plugin's key on a connection unless the connection's kv would
    /// then hold more than `quota` (a write that shrinks it always passes).
    /// The check and the write are one transaction, so concurrent calls on
    /// the same connection cannot overshoot together. A refusal is
    /// [`Error::KvQuota`].
    pub async fn kv_set(
        &self,
        plugin: &str,
        connection: &str,
        key: &str,
        value: &[u8],
        quota: KvQuota,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let usage = lock_usage(&mut tx, plugin, connection).await?;
        let old = stored_size(&mut tx, plugin, connection, key).await?;
        let keys_delta = i64::from(old.is_none());
        let bytes_delta = entry_size(key, value) - old.unwrap_or(0);
        let after = KvUsage {
            keys: usage.keys + keys_delta,
            bytes: usage.bytes + bytes_delta,
        };
        let over_keys = keys_delta > 0 && after.keys > quota.keys;
        let over_bytes = bytes_delta > 0 && after.bytes > quota.bytes;
        if over_keys || over_bytes {
            return Err(Error::KvQuota(KvOverQuota {
                usage,
                quota,
                what: if over_keys { "keys" } else { "bytes" },
            }));
        }
        sqlx::query(
            "INSERT INTO kv (plugin, connection, key, value) VALUES ($1, $2, $3, $4)
             ON CONFLICT(plugin, connection, key) DO UPDATE SET value = excluded.value",
        )
        .bind(plugin)
        .bind(connection)
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await?;
        add_usage(&mut tx, plugin, connection, keys_delta, bytes_delta).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a plugin's key on a connection; a missing key is not an error.
    pub async fn kv_delete(&self, plugin: &str, connection: &str, key: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        lock_usage(&mut tx, plugin, connection).await?;
        if let Some(size) = stored_size(&mut tx, plugin, connection, key).await? {
            sqlx::query("DELETE FROM kv WHERE plugin = $1 AND connection = $2 AND key = $3")
                .bind(plugin)
                .bind(connection)
                .bind(key)
                .execute(&mut *tx)
                .await?;
            add_usage(&mut tx, plugin, connection, -1, -size).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// What a plugin's kv holds on a connection.
    pub async fn kv_usage(&self, plugin: &str, connection: &str) -> Result<KvUsage> {
        let row =
            sqlx::query("SELECT keys, bytes FROM kv_usage WHERE plugin = $1 AND connection = $2")
                .bind(plugin)
                .bind(connection)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map_or(KvUsage::default(), |r| KvUsage {
            keys: r.get("keys"),
            bytes: r.get("bytes"),
        }))
    }

    /// A plugin's keys on a connection that start with `prefix`, sorted.
    pub async fn kv_list(
        &self,
        plugin: &str,
        connection: &str,
        prefix: &str,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT key FROM kv WHERE plugin = $1 AND connection = $2 AND substr(key, 1, length($3)) = $4 ORDER BY key",
        )
        .bind(plugin)
        .bind(connection)
        .bind(prefix)
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.get::<String, _>("key")).collect())
    }
}
