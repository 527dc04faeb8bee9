use std::collections::BTreeMap;

use sqlx::Row;

use super::*;
use crate::secrets::{SecretBox, generate_key};

fn connection(name: &str) -> Connection {
    Connection {
        name: name.into(),
        plugin: "jira".into(),
        version: None,
        config: BTreeMap::from([("base_url".into(), "http://x".into())]),
        auth: Some(Auth::Basic {
            username: "u".into(),
            password: "p".into(),
        }),
        allowed_hosts: vec!["x".into()],
        private_hosts: vec![],
        credential_hosts: Vec::new(),
        rate_limit: None,
        webhook: None,
        circuit: None,
        created_at: "2026-01-01T00:00:00Z".into(),
        updated_at: "2026-01-01T00:00:00Z".into(),
    }
}

#[tokio::test]
async fn connections_round_trip_and_replace() {
    let store = Store::in_memory().await.unwrap();
    assert!(store.put_connection(&connection("a")).await.unwrap());
    let mut changed = connection("a");
    changed.version = Some("1.0.0".into());
    assert!(!store.put_connection(&changed).await.unwrap());
    assert_eq!(store.connection("a").await.unwrap(), Some(changed));
    assert_eq!(store.connection("b").await.unwrap(), None);
    assert_eq!(store.connections().await.unwrap().len(), 1);
}

#[tokio::test]
async fn file_database_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    Store::open_sqlite(&path)
        .await
        .unwrap()
        .put_connection(&connection("a"))
        .await
        .unwrap();
    let reopened = Store::open_sqlite(&path).await.unwrap();
    assert!(reopened.connection("a").await.unwrap().is_some());
}

#[tokio::test]
async fn file_connections_are_durable_and_in_memory_ones_shared() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("j.db")).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    // Every connection of the pool, not only the first.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = store.pool.acquire().await.unwrap();
        for (pragma, expected) in [
            ("journal_mode", "wal"),
            ("synchronous", "2"),
            ("secure_delete", "1"),
            ("foreign_keys", "1"),
            ("busy_timeout", "5000"),
        ] {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA {pragma}")))
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let value = row
                .try_get::<String, _>(0)
                .or_else(|_| row.try_get::<i64, _>(0).map(|n| n.to_string()))
                .unwrap();
            assert_eq!(value, expected, "PRAGMA {pragma}");
        }
        held.push(conn);
    }
    drop(held);
    // The connections of an in-memory store see one database.
    let store = Store::in_memory().await.unwrap();
    let mut a = store.pool.acquire().await.unwrap();
    let mut b = store.pool.acquire().await.unwrap();
    sqlx::query("INSERT INTO kv (plugin, connection, key, value) VALUES ('p', 'c', 'k', x'00')")
        .execute(&mut *a)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kv")
        .fetch_one(&mut *b)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

// ---- secrets at rest ----

const PASSWORD: &str = "jira-api-token-7f3a9c2e5b8d1f4a";
const TOKEN: &str = "oauth-refresh-token-c0ffee1234567890";
const CLIENT_SECRET: &str = "oauth-client-secret-9988776655443322";
const WEBHOOK_SECRET: &str = "whsec-signing-secret-a1b2c3d4e5f60718";

fn with_secrets(name: &str) -> Connection {
    Connection {
        auth: Some(Auth::OAuth2RefreshToken {
            token_url: "https://auth.example.com/token".into(),
            client_id: "client-1".into(),
            client_secret: CLIENT_SECRET.into(),
            refresh_token: TOKEN.into(),
            scope: None,
        }),
        webhook: Some(WebhookSettings {
            scheme: crate::Scheme::Stripe,
            secret: WEBHOOK_SECRET.into(),
        }),
        ..connection(name)
    }
}

fn basic(name: &str) -> Connection {
    Connection {
        auth: Some(Auth::Basic {
            username: "ops@acme.example".into(),
            password: PASSWORD.into(),
        }),
        ..connection(name)
    }
}

/// The database file and its WAL and shared-memory companions, concatenated.
fn database_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_os_string();
        name.push(suffix);
        if let Ok(b) = std::fs::read(&name) {
            bytes.extend(b);
        }
    }
    assert!(!bytes.is_empty());
    bytes
}

/// `secret` as it would appear base64-encoded at any byte offset, in the
/// standard and URL-safe alphabets: the characters that encode only its
/// bytes.
fn base64_forms(secret: &[u8]) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    let mut forms = Vec::new();
    for shift in 0..3 {
        let mut bytes = vec![b'x'; shift];
        bytes.extend_from_slice(secret);
        for engine in [&STANDARD, &URL_SAFE] {
            let text = engine.encode(&bytes);
            let start = if shift == 0 { 0 } else { 4 };
            forms.push(text[start..text.len() - 4].to_string());
        }
    }
    forms
}

fn assert_absent(bytes: &[u8], secret: &str) {
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(secret.as_bytes()), "{secret} is in the database");
    for form in base64_forms(secret.as_bytes()) {
        assert!(
            !contains(form.as_bytes()),
            "base64 of {secret} ({form}) is in the database"
        );
    }
}

#[tokio::test]
async fn secrets_are_sealed_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let store = Store::open_sqlite(&path).await.unwrap();
    store.put_connection(&with_secrets("a")).await.unwrap();
    store.put_connection(&basic("b")).await.unwrap();
    // Replacing a connection must not leave the old secret behind either.
    let mut replaced = basic("c");
    store.put_connection(&replaced).await.unwrap();
    replaced.auth = Some(Auth::Bearer {
        token: "bearer-token-after-replacement-0001".into(),
    });
    store.put_connection(&replaced).await.unwrap();
    assert_eq!(
        store.connection("a").await.unwrap(),
        Some(with_secrets("a"))
    );

    let bytes = database_bytes(&path);
    // The scan sees what is stored: the non-secret settings are there.
    assert!(bytes.windows(10).any(|w| w == b"\"base_url\""));
    for secret in [PASSWORD, TOKEN, CLIENT_SECRET, WEBHOOK_SECRET] {
        assert_absent(&bytes, secret);
    }
    // What a Basic header would carry.
    assert_absent(&bytes, &format!("ops@acme.example:{PASSWORD}"));
    assert_absent(&bytes, "bearer-token-after-replacement-0001");
    // The stored columns are sealed values, not JSON.
    let raw: (String, String) =
        sqlx::query_as("SELECT auth, webhook FROM connections WHERE name = 'a'")
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert!(
        raw.0.starts_with("v1:") && raw.1.starts_with("v1:"),
        "{raw:?}"
    );
    // The key is neither in the database nor in the store's Debug output.
    let key = std::fs::read_to_string(key_file_path(&path)).unwrap();
    assert_absent(&bytes, key.trim());
    assert!(!format!("{store:?}").contains(key.trim()));
}

#[tokio::test]
async fn key_file_is_created_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let key_file = key_file_path(&path);
    assert_eq!(key_file, dir.path().join("j.db.key"));
    let store = Store::open_sqlite(&path).await.unwrap();
    store.put_connection(&with_secrets("a")).await.unwrap();
    drop(store);
    let key = std::fs::read_to_string(&key_file).unwrap();
    SecretBox::from_config(&key).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    // Reopening reads the same key: the secrets open.
    let reopened = Store::open_sqlite(&path).await.unwrap();
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
    assert_eq!(
        reopened.connection("a").await.unwrap(),
        Some(with_secrets("a"))
    );
    drop(reopened);
    // The same key given in configuration opens them too.
    let configured = StoreConfig {
        secret_key: Some(key.trim().to_string().into()),
        ..StoreConfig::default()
    };
    let store = Store::open_sqlite_with_config(&path, &configured)
        .await
        .unwrap();
    assert!(store.connection("a").await.unwrap().is_some());
    drop(store);

    // Without the key file, a new key would open nothing: refuse.
    std::fs::remove_file(&key_file).unwrap();
    let err = Store::open_sqlite(&path).await.unwrap_err().to_string();
    assert!(err.contains("is missing"), "{err}");
    assert!(err.contains("j.db.key"), "{err}");
    assert!(!key_file.exists());
}

#[tokio::test]
async fn another_key_fails_clearly_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let key = SecretBox::from_config(&generate_key()).unwrap();
    let store = Store::open_sqlite_with_key(&path, key.clone())
        .await
        .unwrap();
    store.put_connection(&with_secrets("a")).await.unwrap();
    drop(store);
    // The configured key was used: no key file.
    assert!(!key_file_path(&path).exists());

    let other = SecretBox::from_config(&generate_key()).unwrap();
    let err = Store::open_sqlite_with_key(&path, other.clone())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(
            &err,
            Error::Secret {
                reason: SecretError::WrongKey { .. },
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("connection `a`"), "{message}");
    assert!(message.contains("different key"), "{message}");
    assert!(message.contains(key.key_id()), "{message}");
    assert!(message.contains(other.key_id()), "{message}");
    assert!(message.contains("secret_key"), "{message}");
    // A malformed configured key is refused before anything is opened.
    let bad = StoreConfig {
        secret_key: Some("not-a-key".to_string().into()),
        ..StoreConfig::default()
    };
    let err = Store::open_sqlite_with_config(&path, &bad)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("secret_key") && err.contains("base64"),
        "{err}"
    );
    // The right key still works.
    let store = Store::open_sqlite_with_key(&path, key).await.unwrap();
    assert!(store.connection("a").await.unwrap().is_some());
}

#[tokio::test]
async fn sealed_values_are_bound_to_their_row() {
    let store = Store::in_memory().await.unwrap();
    store.put_connection(&with_secrets("a")).await.unwrap();
    store.put_connection(&connection("b")).await.unwrap();
    sqlx::query("UPDATE connections SET auth = (SELECT auth FROM connections WHERE name = 'a') WHERE name = 'b'")
        .execute(&store.pool)
        .await
        .unwrap();
    let err = store.connection("b").await.unwrap_err().to_string();
    assert!(err.contains("connection `b`"), "{err}");
    assert!(err.contains("altered or corrupted"), "{err}");
    assert!(!err.contains(TOKEN), "{err}");
    // Connection `a` is unaffected.
    assert!(store.connection("a").await.unwrap().is_some());
}

#[tokio::test]
async fn plaintext_rows_of_older_versions_are_sealed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let store = Store::open_sqlite(&path).await.unwrap();
    store.put_connection(&connection("old")).await.unwrap();
    // What a version before sealing stored: the JSON itself.
    let auth = serde_json::to_string(&basic("old").auth).unwrap();
    let webhook = serde_json::to_string(&with_secrets("old").webhook).unwrap();
    sqlx::query("UPDATE connections SET auth = $1, webhook = $2 WHERE name = 'old'")
        .bind(&auth)
        .bind(&webhook)
        .execute(&store.pool)
        .await
        .unwrap();
    store.pool.close().await;

    let store = Store::open_sqlite(&path).await.unwrap();
    let loaded = store.connection("old").await.unwrap().unwrap();
    assert_eq!(loaded.auth, basic("old").auth);
    assert_eq!(loaded.webhook, with_secrets("old").webhook);
    let raw: (String, String) =
        sqlx::query_as("SELECT auth, webhook FROM connections WHERE name = 'old'")
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert!(
        raw.0.starts_with("v1:") && raw.1.starts_with("v1:"),
        "{raw:?}"
    );
    let bytes = database_bytes(&path);
    assert_absent(&bytes, PASSWORD);
    assert_absent(&bytes, WEBHOOK_SECRET);
}

#[test]
fn debug_output_redacts_secrets() {
    let text = format!("{:?}", with_secrets("a"));
    for secret in [TOKEN, CLIENT_SECRET, WEBHOOK_SECRET] {
        assert!(!text.contains(secret), "{text}");
    }
    assert!(!format!("{:?}", basic("b")).contains(PASSWORD));
}
