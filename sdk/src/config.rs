//! The non-secret settings of the connection the plugin runs on (for a
//! transform: of the transform's configuration). Secrets are never here.

/// The setting `key`, or `None` when the connection has no such setting.
pub fn get(key: &str) -> Option<String> {
    if cfg!(target_arch = "wasm32") {
        crate::wit::config::get(key)
    } else {
        None
    }
}

/// Every setting, as (key, value) pairs.
pub fn all() -> Vec<(String, String)> {
    if cfg!(target_arch = "wasm32") {
        crate::wit::config::get_all()
    } else {
        Vec::new()
    }
}
