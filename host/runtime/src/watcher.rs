//! The watched plugin directory: drop a package (`*.jpkg`) in to upload it,
//! remove it to unload that version. Uploads go through the same validation,
//! signature policy and audit log as `POST /v1/plugins`, with the actor
//! `watcher`. Write packages under another name and rename them into place:
//! only `*.jpkg` files are read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use crate::runtime::Runtime;

/// The actor name the audit log shows for the directory.
pub const ACTOR: &str = "watcher";

/// How long the directory must be quiet before it is rescanned, so that a
/// burst of events (a copy, a rename) causes one scan.
const SETTLE: Duration = Duration::from_millis(150);

/// A running directory watch; dropping it stops the watch.
pub struct DirWatch {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DirWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the watcher knows of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    bytes_digest: String,
    plugin: Option<(String, String)>,
}

/// Loads every package in `dir`, then keeps watching it.
pub async fn watch(runtime: Arc<Runtime>, dir: PathBuf) -> anyhow::Result<DirWatch> {
    std::fs::create_dir_all(&dir)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // The receiver is gone only when the watch is being dropped.
        let _ = tx.send(event.is_ok());
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;

    let mut seen = BTreeMap::new();
    scan(&runtime, &dir, &mut seen).await;
    let task = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Coalesce the burst of events that one file operation makes.
            while let Ok(Some(_)) = tokio::time::timeout(SETTLE, rx.recv()).await {}
            scan(&runtime, &dir, &mut seen).await;
        }
    });
    Ok(DirWatch {
        _watcher: watcher,
        task,
    })
}

fn packages_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "jpkg"))
        .collect();
    files.sort();
    files
}

async fn scan(runtime: &Runtime, dir: &Path, seen: &mut BTreeMap<PathBuf, Seen>) {
    let present = packages_in(dir);
    for path in &present {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        let digest = junction_registry::Digest::of(&bytes).to_string();
        if seen.get(path).is_some_and(|s| s.bytes_digest == digest) {
            continue;
        }
        let plugin = match runtime.upload_package(&bytes, ACTOR).await {
            Ok(up) => {
                tracing::info!(file = %path.display(), plugin = %up.name, version = %up.version, "package loaded from the plugin directory");
                Some((up.name, up.version))
            }
            Err(err) => {
                tracing::error!(file = %path.display(), error = %err, "package in the plugin directory refused");
                None
            }
        };
        seen.insert(
            path.clone(),
            Seen {
                bytes_digest: digest,
                plugin,
            },
        );
    }
    let gone: Vec<PathBuf> = seen
        .keys()
        .filter(|p| !present.contains(p))
        .cloned()
        .collect();
    for path in gone {
        let Some(Seen {
            plugin: Some((name, version)),
            ..
        }) = seen.remove(&path)
        else {
            continue;
        };
        match runtime.delete_version(&name, &version, ACTOR).await {
            Ok(()) => {
                tracing::info!(file = %path.display(), plugin = %name, %version, "package removed: version unloaded")
            }
            Err(err) => {
                tracing::warn!(file = %path.display(), plugin = %name, %version, error = %err, "package removed but the version stays loaded")
            }
        }
    }
}
