//! Plugin packages (bytes by digest), the versions the host accepted and the
//! activation history.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use crate::{Result, Store};

/// A plugin version the host accepted, as stored.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StoredVersion {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// `connector` or `transform`.
    pub world: String,
    /// sha256 of the component.
    pub component_digest: String,
    /// sha256 of the package (manifest + component); the key of its bytes.
    pub package_digest: String,
    /// Key id of the signer, when signed.
    pub signer: Option<String>,
    /// RFC 3339 upload time.
    pub uploaded_at: String,
    /// Token name of the uploader.
    pub uploaded_by: String,
}

impl Store {
    /// Stores package bytes under their digest; storing them twice is a no-op.
    pub async fn put_package(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO packages (digest, bytes) VALUES ($1, $2) ON CONFLICT(digest) DO NOTHING",
        )
        .bind(digest)
        .bind(bytes)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The bytes of the package with `digest`.
    pub async fn package(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT bytes FROM packages WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<Vec<u8>, _>("bytes")))
    }

    /// Records an accepted plugin version.
    pub async fn put_plugin_version(&self, v: &StoredVersion) -> Result<()> {
        sqlx::query(
            "INSERT INTO plugin_versions (name, version, world, component_digest, package_digest, signer, uploaded_at, uploaded_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT(name, version) DO NOTHING",
        )
        .bind(&v.name)
        .bind(&v.version)
        .bind(&v.world)
        .bind(&v.component_digest)
        .bind(&v.package_digest)
        .bind(&v.signer)
        .bind(&v.uploaded_at)
        .bind(&v.uploaded_by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every stored plugin version, by name then upload order.
    pub async fn plugin_versions(&self) -> Result<Vec<StoredVersion>> {
        let rows = sqlx::query("SELECT * FROM plugin_versions ORDER BY name, uploaded_at")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredVersion {
                name: r.get("name"),
                version: r.get("version"),
                world: r.get("world"),
                component_digest: r.get("component_digest"),
                package_digest: r.get("package_digest"),
                signer: r.get("signer"),
                uploaded_at: r.get("uploaded_at"),
                uploaded_by: r.get("uploaded_by"),
            })
            .collect())
    }

    /// Forgets a plugin version (its package bytes stay, content-addressed).
    pub async fn delete_plugin_version(&self, name: &str, version: &str) -> Result<()> {
        sqlx::query("DELETE FROM plugin_versions WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that `version` became the active version of `name`.
    pub async fn record_activation(&self, name: &str, version: &str, by: &str) -> Result<()> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        sqlx::query("INSERT INTO plugin_activations (name, version, activated_at, activated_by) VALUES ($1, $2, $3, $4)")
            .bind(name)
            .bind(version)
            .bind(at)
            .bind(by)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The last recorded active version of each plugin.
    pub async fn active_versions(&self) -> Result<BTreeMap<String, String>> {
        let rows = sqlx::query(
            "SELECT a.name, a.version FROM plugin_activations a
             WHERE a.seq = (SELECT MAX(seq) FROM plugin_activations b WHERE b.name = a.name)",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get("name"), r.get("version")))
            .collect())
    }

    /// The versions `name` was activated at, oldest first.
    pub async fn activation_history(&self, name: &str) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT version FROM plugin_activations WHERE name = $1 ORDER BY seq")
                .bind(name)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(|r| r.get("version")).collect())
    }
}
