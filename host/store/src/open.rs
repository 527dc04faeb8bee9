//! Opening the database: SQLite file, in-memory or PostgreSQL, migrations,
//! and the key sealing connection secrets (configured, key file, throwaway).

use std::path::Path;
use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyConnection, AnyPool, ConnectOptions as _, Connection as _};

use crate::config::{DatabaseLocation, POSTGRES_NEEDS_KEY, StoreConfig};
use crate::secrets::{SecretBox, generate_key};
use crate::{
    Backend, Error, KeySource, Result, SQLITE_FILE_PRAGMAS, SQLITE_PRAGMAS, Store, key_file_path,
    redact_url,
};

impl Store {
    /// Opens the database `config` names (`database`): a SQLite file
    /// (created with its directory when missing), a PostgreSQL URL, or, when
    /// absent, an in-memory SQLite database. PostgreSQL needs `secret_key`:
    /// there is no key file beside it, and hosts sharing it must share the key.
    pub async fn open(config: &StoreConfig) -> Result<Store> {
        match config.database_location() {
            DatabaseLocation::Memory => Self::in_memory().await,
            DatabaseLocation::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        Error::Config(format!(
                            "database: cannot create the directory {}: {e}",
                            parent.display()
                        ))
                    })?;
                }
                Self::open_sqlite_with_config(path, config).await
            }
            DatabaseLocation::Postgres(url) => {
                let Some(key) = configured_key(config)? else {
                    return Err(Error::Config(POSTGRES_NEEDS_KEY.to_string()));
                };
                Self::open_postgres(url, key).await
            }
        }
    }

    /// Opens the PostgreSQL database at `url` (`postgres://` or
    /// `postgresql://`) and migrates it; secrets are sealed with `key`.
    pub async fn open_postgres(url: &str, key: SecretBox) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_str(url)
            .map_err(|e| Error::Config(format!("database {}: {e}", redact_url(url))))?;
        let unreachable = |e: sqlx::Error| {
            Error::Config(format!(
                "database: cannot connect to PostgreSQL at {}: {e}",
                redact_url(url)
            ))
        };
        // One connection first: the pool would retry a refused connection
        // until its acquire timeout, and the host should stop at once.
        AnyConnection::connect_with(&options)
            .await
            .map_err(unreachable)?
            .close()
            .await
            .map_err(unreachable)?;
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .min_connections(0)
            .connect_with(options)
            .await
            .map_err(unreachable)?;
        let store = Self::finish(pool, Backend::Postgres, KeySource::Given(key)).await?;
        Ok(Store {
            url: Some(crate::ListenUrl(url.to_string())),
            ..store
        })
    }

    /// Opens (creating if needed) the SQLite database at `path` and migrates
    /// it; secrets are sealed with the key in [`key_file_path`], which is
    /// created on first start.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        Self::connect_sqlite(Some(path), KeySource::File(path)).await
    }

    /// As [`open_sqlite`](Self::open_sqlite), sealing secrets with `key`.
    pub async fn open_sqlite_with_key(path: &Path, key: SecretBox) -> Result<Store> {
        Self::connect_sqlite(Some(path), KeySource::Given(key)).await
    }

    /// As [`open_sqlite`](Self::open_sqlite), with the key of `config`'s
    /// `secret_key` when it has one.
    pub async fn open_sqlite_with_config(path: &Path, config: &StoreConfig) -> Result<Store> {
        match configured_key(config)? {
            Some(key) => Self::open_sqlite_with_key(path, key).await,
            None => Self::open_sqlite(path).await,
        }
    }

    /// An in-memory database, for tests and throwaway runs; its secrets are
    /// sealed with a key that dies with it.
    pub async fn in_memory() -> Result<Store> {
        Self::connect_sqlite(None, KeySource::Ephemeral).await
    }

    /// Connects to the SQLite file at `path` (`None`: a new in-memory
    /// database), with the pragmas the store relies on set on every connection.
    async fn connect_sqlite(path: Option<&Path>, key: KeySource<'_>) -> Result<Store> {
        let url = match path {
            Some(path) => {
                // The Any driver takes a URL: make it absolute so the file
                // name cannot be read as a URL's host.
                let absolute = std::path::absolute(path)
                    .map_err(|e| Error::Config(format!("database {}: {e}", path.display())))?;
                SqliteConnectOptions::new()
                    .filename(absolute)
                    .create_if_missing(true)
                    .to_url_lossy()
            }
            // A named shared-cache database: every connection of the pool
            // sees the same one, and it lives while the pool does.
            None => url::Url::parse(&format!(
                "sqlite:file:junction-memory-{}?mode=memory&cache=shared",
                uuid::Uuid::new_v4().simple()
            ))
            .map_err(|e| Error::Config(format!("in-memory database: {e}")))?,
        };
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_url(&url)?;
        let in_memory = path.is_none();
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            // One connection always open keeps an in-memory database alive.
            .min_connections(u32::from(in_memory))
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    for pragma in SQLITE_PRAGMAS {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    if !in_memory {
                        for pragma in SQLITE_FILE_PRAGMAS {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Self::finish(pool, Backend::Sqlite, key).await
    }

    /// Migrates the database behind `pool`, loads the key and checks the
    /// stored secrets against it.
    async fn finish(pool: AnyPool, backend: Backend, key: KeySource<'_>) -> Result<Store> {
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        let (secrets, key_origin) = match key {
            KeySource::Given(secrets) => (
                secrets,
                "the configured `secret_key` (JUNCTION_SECRET_KEY)".to_string(),
            ),
            KeySource::File(database) => {
                let path = key_file_path(database);
                let secrets = key_from_file(&pool, &path).await?;
                (secrets, format!("from key file {}", path.display()))
            }
            KeySource::Ephemeral => (
                SecretBox::from_config(&generate_key()).map_err(|e| Error::Key(e.to_string()))?,
                "a throwaway key of the in-memory store".to_string(),
            ),
        };
        let store = Store {
            pool,
            backend,
            secrets,
            key_origin,
            commit_seconds: crate::commit::commit_histogram(),
            url: None,
            events_written: std::sync::Arc::default(),
        };
        store.check_secrets().await?;
        Ok(store)
    }
}

/// The key of `config`'s `secret_key`, if it has one.
fn configured_key(config: &StoreConfig) -> Result<Option<SecretBox>> {
    config
        .secret_key
        .as_ref()
        .map(|text| {
            SecretBox::from_config(text.expose())
                .map_err(|e| Error::Key(format!("secret_key: {e}")))
        })
        .transpose()
}

/// Reads the key file at `path`, or creates it when it does not exist and
/// the database holds no sealed secret (which a new key could not open).
async fn key_from_file(pool: &AnyPool, path: &Path) -> Result<SecretBox> {
    let key_error = |what: String| Error::Key(format!("key file {}: {what}", path.display()));
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            return SecretBox::from_config(&text).map_err(|e| key_error(e.to_string()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(key_error(format!("cannot be read: {e}"))),
    }
    let sealed = sqlx::query(
        "SELECT 1 FROM connections WHERE auth LIKE 'v1:%' OR webhook LIKE 'v1:%' LIMIT 1",
    )
    .fetch_optional(pool)
    .await?
    .is_some();
    if sealed {
        return Err(key_error(
            "is missing, but the database holds secrets sealed with a key; restore the key \
             file, or configure that key as `secret_key` (JUNCTION_SECRET_KEY)"
                .into(),
        ));
    }
    let text = generate_key();
    match write_new_key_file(path, &text) {
        Ok(()) => {
            tracing::info!(
                path = %path.display(),
                "generated the key that seals connection secrets; keep it with the database \
                 (backups need both)"
            );
            SecretBox::from_config(&text).map_err(|e| key_error(e.to_string()))
        }
        // Another process opening the same database created it first.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| key_error(format!("cannot be read: {e}")))?;
            SecretBox::from_config(&text).map_err(|e| key_error(e.to_string()))
        }
        Err(e) => Err(key_error(format!("cannot be created: {e}"))),
    }
}

/// Writes `text` to a new file at `path`, readable by its owner only. The
/// key is written and synced under a temporary name first and then linked
/// into place, so `path` never exists half-written and an existing file is
/// never replaced.
fn write_new_key_file(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::hard_link(&tmp, path)?;
        #[cfg(unix)]
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the secrets key file is readable by other users; restrict it with `chmod 600`"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
