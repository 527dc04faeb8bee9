//! The SDK this binary carries: its sources and the WIT of this version,
//! written where a new plugin crate references them, so that `junction
//! plugin new` needs no checkout and no SDK on crates.io.
//!
//! The directory is per user and per version (`$JUNCTION_SDK_DIR`, else
//! `$XDG_DATA_HOME/junction/sdk-<version>`, else
//! `~/.local/share/junction/sdk-<version>`), laid out as in the repository:
//! `sdk/` (the crate) beside `wit/`. A file that is missing or differs from
//! what the binary carries is written again; nothing else is touched.

use std::fs;
use std::path::{Path, PathBuf};

use super::{ScaffoldError, io_error};

include!(concat!(env!("OUT_DIR"), "/sdk_files.rs"));

/// The version of the SDK this binary carries.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where the SDK of this version goes for this user; `None` when neither
/// `JUNCTION_SDK_DIR`, `XDG_DATA_HOME` nor `HOME` is set.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("JUNCTION_SDK_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|d| !d.is_empty())
                .map(|home| PathBuf::from(home).join(".local/share"))
        })?;
    Some(data.join("junction").join(format!("sdk-{VERSION}")))
}

/// Writes the SDK under `root` (what is there already and equal stays) and
/// returns the crate's directory, `root/sdk`.
pub fn install(root: &Path) -> Result<PathBuf, ScaffoldError> {
    let manifest = ("sdk/Cargo.toml", SDK_MANIFEST.as_bytes());
    for (relative, contents) in SDK_FILES.iter().copied().chain(std::iter::once(manifest)) {
        let path = root.join(relative);
        if fs::read(&path).is_ok_and(|existing| existing == contents) {
            continue;
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_error("creating", parent))?;
        }
        // Whole or not at all: a crash leaves the old file or a stray temporary.
        let partial = path.with_extension("partial");
        fs::write(&partial, contents).map_err(io_error("writing", &partial))?;
        fs::rename(&partial, &path).map_err(io_error("writing", &path))?;
    }
    Ok(root.join("sdk"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_and_its_wit_are_carried_and_stand_alone() {
        let names: Vec<&str> = SDK_FILES.iter().map(|(n, _)| *n).collect();
        assert!(names.contains(&"sdk/src/lib.rs"), "{names:?}");
        assert!(names.contains(&"wit/plugin.wit"), "{names:?}");
        assert!(!SDK_MANIFEST.contains("workspace"), "{SDK_MANIFEST}");
        assert!(
            SDK_MANIFEST.contains(&format!("version = \"{VERSION}\"")),
            "{SDK_MANIFEST}"
        );
        let dir = tempfile::tempdir().unwrap();
        let sdk = install(dir.path()).unwrap();
        assert!(sdk.join("Cargo.toml").is_file());
        assert!(dir.path().join("wit/plugin.wit").is_file());
        // A changed file is put back; a second install changes nothing else.
        fs::write(sdk.join("src/lib.rs"), "broken").unwrap();
        install(dir.path()).unwrap();
        assert_ne!(
            fs::read_to_string(sdk.join("src/lib.rs")).unwrap(),
            "broken"
        );
    }
}
