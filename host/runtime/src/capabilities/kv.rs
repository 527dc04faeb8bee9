//! `junction:plugin/kv`: persistent state scoped to one plugin on one
//! connection, kept in the host's store.

use crate::bindings::junction::plugin::kv::{Error, Host};
use crate::engine::Limits;
use junction_store::{KvQuota, Store};

use super::HostState;
use super::quota::Quota;

/// Longest key accepted, in bytes.
const MAX_KEY_BYTES: usize = 1024;

/// The kv scope of one call.
pub(crate) struct Kv {
    store: Store,
    plugin: String,
    connection: String,
    max_value_bytes: usize,
    quota: KvQuota,
}

impl Kv {
    pub(crate) fn new(store: Store, plugin: String, connection: String, limits: &Limits) -> Kv {
        let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        Kv {
            store,
            plugin,
            connection,
            max_value_bytes: usize::try_from(limits.hostcall_bytes).unwrap_or(usize::MAX),
            quota: KvQuota {
                keys: signed(limits.kv_keys),
                bytes: signed(limits.kv_bytes),
            },
        }
    }
}

fn unavailable(err: impl std::fmt::Display) -> Error {
    tracing::warn!(%err, "kv store call failed");
    Error::Unavailable("the host's store is unavailable".into())
}

impl HostState {
    fn kv(&mut self) -> Result<&Kv, Error> {
        self.kv
            .as_ref()
            .ok_or_else(|| Error::Unavailable("kv is only available on a connection".into()))
    }
}

fn check_key(key: &str) -> Result<(), Error> {
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::TooLarge(format!(
            "key is {} bytes; the limit is {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

impl Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let kv = match self.kv() {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = check_key(&key) {
            return Ok(Err(e));
        }
        Ok(kv
            .store
            .kv_get(&kv.plugin, &kv.connection, &key)
            .await
            .map_err(unavailable))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), Error>> {
        let kv = match self.kv() {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = check_key(&key) {
            return Ok(Err(e));
        }
        if value.len() > kv.max_value_bytes {
            return Ok(Err(Error::TooLarge(format!(
                "value is {} bytes; the limit is {}",
                value.len(),
                kv.max_value_bytes
            ))));
        }
        let written = kv
            .store
            .kv_set(&kv.plugin, &kv.connection, &key, &value, kv.quota)
            .await;
        match written {
            Ok(()) => Ok(Ok(())),
            Err(junction_store::Error::KvQuota(over)) => {
                self.refusals().note(if over.what == "keys" {
                    Quota::KvKeys
                } else {
                    Quota::KvBytes
                });
                Ok(Err(Error::TooLarge(over.to_string())))
            }
            Err(e) => Ok(Err(unavailable(e))),
        }
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), Error>> {
        let kv = match self.kv() {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
        Ok(kv
            .store
            .kv_delete(&kv.plugin, &kv.connection, &key)
            .await
            .map_err(unavailable))
    }

    async fn list_keys(&mut self, prefix: String) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let kv = match self.kv() {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
        Ok(kv
            .store
            .kv_list(&kv.plugin, &kv.connection, &prefix)
            .await
            .map_err(unavailable))
    }
}
