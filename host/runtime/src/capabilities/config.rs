//! `junction:plugin/config`: the non-secret settings of the connection the
//! plugin is called on. Secrets are never here.

use crate::bindings::junction::plugin::config::Host;

use super::HostState;

impl Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.scope.config.get(&key).cloned())
    }

    async fn get_all(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self
            .scope
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
