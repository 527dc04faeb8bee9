//! Plugin key-value state, scoped by plugin and connection.

use sqlx::Row;

use crate::{Result, Store};

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

    /// Sets a plugin's key on a connection.
    pub async fn kv_set(
        &self,
        plugin: &str,
        connection: &str,
        key: &str,
        value: &[u8],
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO kv (plugin, connection, key, value) VALUES ($1, $2, $3, $4)
             ON CONFLICT(plugin, connection, key) DO UPDATE SET value = excluded.value",
        )
        .bind(plugin)
        .bind(connection)
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes a plugin's key on a connection; a missing key is not an error.
    pub async fn kv_delete(&self, plugin: &str, connection: &str, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM kv WHERE plugin = $1 AND connection = $2 AND key = $3")
            .bind(plugin)
            .bind(connection)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
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
