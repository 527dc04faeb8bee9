//! The compiled-code cache: `Component::serialize` output on disk, keyed by
//! the component's digest and the engine's compatibility hash, so a restart
//! or a re-load of the same component does not compile it again.
//!
//! An entry is trusted only when its own sha256 (kept beside it) matches and
//! wasmtime accepts it for this engine; anything else is ignored, rebuilt
//! and overwritten.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use junction_registry::Digest;
use sha2::{Digest as _, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Whether a component came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Deserialized from the cache.
    Cached,
    /// Compiled now (and written to the cache when there is one).
    Compiled,
}

/// A directory of compiled components.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompileCache {
    /// A cache in `dir` (created if missing) for `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> std::io::Result<CompileCache> {
        std::fs::create_dir_all(dir)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        // The same binary hashes the same way; another wasmtime or another
        // configuration gets other keys, so its entries are never looked at.
        let engine_key = format!("{:016x}", hasher.finish());
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            engine_key,
        })
    }

    fn paths(&self, digest: &Digest) -> (PathBuf, PathBuf) {
        let hex = digest.as_str().trim_start_matches("sha256:");
        let stem = format!("{hex}-{}", self.engine_key);
        (
            self.dir.join(format!("{stem}.cwasm")),
            self.dir.join(format!("{stem}.sha256")),
        )
    }

    /// The cached component for `digest`, if a sound entry exists.
    pub fn load(&self, engine: &Engine, digest: &Digest) -> Option<Component> {
        let (code, check) = self.paths(digest);
        let bytes = std::fs::read(&code).ok()?;
        let expected = std::fs::read_to_string(&check).ok()?;
        if hex::encode(Sha256::digest(&bytes)) != expected.trim() {
            tracing::warn!(file = %code.display(), "compiled-code cache entry is corrupt; recompiling");
            return None;
        }
        // SAFETY: `Component::deserialize` runs native code from these bytes.
        // They were written by `store` below from wasmtime's own output for
        // this engine configuration (the key), and their sha256 was checked
        // just above, so they are what this host compiled. wasmtime also
        // checks the header against the engine and refuses a mismatch.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &bytes) };
        match component {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(file = %code.display(), error = %err, "compiled-code cache entry refused; recompiling");
                None
            }
        }
    }

    /// Writes a compiled component for `digest`; failures only cost a recompile later.
    pub fn store(&self, digest: &Digest, component: &Component) {
        let (code, check) = self.paths(digest);
        let result = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|bytes| {
                write_atomic(&code, &bytes)?;
                write_atomic(&check, hex::encode(Sha256::digest(&bytes)).as_bytes())
            });
        if let Err(err) = result {
            tracing::warn!(file = %code.display(), error = %err, "could not write the compiled-code cache");
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Compiles `bytes`, through `cache` when there is one.
pub fn compile(
    engine: &Engine,
    cache: Option<&CompileCache>,
    digest: &Digest,
    bytes: &[u8],
) -> wasmtime::Result<(Component, Origin)> {
    if let Some(component) = cache.and_then(|c| c.load(engine, digest)) {
        return Ok((component, Origin::Cached));
    }
    let component = Component::new(engine, bytes)?;
    if let Some(cache) = cache {
        cache.store(digest, &component);
    }
    Ok((component, Origin::Compiled))
}
