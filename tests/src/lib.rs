//! Shared helpers of Junction's end-to-end tests; the tests are in `tests/`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;

use junction_host::config::Config;
use junction_host::engine::Limits;
use junction_host::runtime::Runtime;
use junction_host::store::Store;

/// Paths of the test-only guest components, built by `build.rs`.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));

    /// The bytes of a guest component.
    pub fn bytes(path: &str) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| panic!("reading guest {path}: {e}"))
    }
}

/// Limits small enough that hostile guests hit them quickly.
pub fn test_limits() -> Limits {
    Limits {
        memory_mib: 32,
        deadline_ms: 1_500,
        output_bytes: 1024 * 1024,
        pooled_instances: 32,
        ..Limits::default()
    }
}

/// A configuration for tests: in-memory store, no compiled-code cache.
pub fn test_config(limits: Limits) -> Config {
    Config {
        database: None,
        cache_dir: None,
        limits,
        ..Config::default()
    }
}

/// A runtime over an in-memory store.
pub async fn runtime(limits: Limits) -> Arc<Runtime> {
    runtime_with(&test_config(limits)).await
}

/// A runtime over an in-memory store with `config`.
pub async fn runtime_with(config: &Config) -> Arc<Runtime> {
    let store = Store::in_memory().await.expect("in-memory store");
    Arc::new(Runtime::new(store, config).expect("runtime"))
}
