//! The runtime's configuration: plugin limits, the compiled-code cache, the
//! plugin directory and the signature policy. Top-level keys of
//! `junction.toml` (`[limits]` a table); the binary composes them with the
//! other crates' sections.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::Limits;

/// The runtime's settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RuntimeConfig {
    /// Directory watched for plugin packages (`*.jpkg`): dropping one in
    /// uploads it, removing it unloads that version (unless it is active or pinned).
    pub plugin_dir: Option<PathBuf>,
    /// Compiled-code cache; absent compiles every component at every load.
    pub cache_dir: Option<PathBuf>,
    /// Refuse packages that are not signed by one of `trusted_keys`.
    pub require_signatures: bool,
    /// Public keys (`ed25519:<base64>`) whose signatures are trusted.
    pub trusted_keys: Vec<String>,
    /// Largest component accepted, in bytes.
    pub max_component_bytes: usize,
    /// Limits of every plugin call.
    pub limits: Limits,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            plugin_dir: None,
            cache_dir: Some(PathBuf::from("junction-data/cache")),
            require_signatures: false,
            trusted_keys: Vec::new(),
            max_component_bytes: junction_registry::DEFAULT_MAX_COMPONENT_BYTES,
            limits: Limits::default(),
        }
    }
}

/// The top-level keys these settings own.
pub const KEYS: &[&str] = &[
    "plugin_dir",
    "cache_dir",
    "require_signatures",
    "trusted_keys",
    "max_component_bytes",
    "limits",
];

impl RuntimeConfig {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.limits.memory_mib == 0 || self.limits.deadline_ms == 0 {
            return Err("limits.memory_mib and limits.deadline_ms must be above zero".into());
        }
        Ok(())
    }
}
