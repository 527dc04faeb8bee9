//! A content-addressed package store on disk, and semver resolution.
//!
//! Layout: `<dir>/blobs/sha256/<hex>` holds the `.jpkg` file whose package
//! digest is `sha256:<hex>`. The digest covers the manifest and the component
//! but not the signature, so storing the same package again with another
//! signature replaces the stored signature; everything else is immutable.
//! Writes go to a temporary file in the same directory, are fsynced, renamed
//! into place and the directory fsynced, so a reader sees a whole blob or none.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::package::Package;
use crate::{Digest, Refusal};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// A stored blob no longer reads as the package its name says.
    #[error("the stored package {digest} is corrupt: {reason}")]
    Corrupt {
        /// The digest it is stored under.
        digest: Digest,
        /// What is wrong.
        reason: String,
    },
}

/// `Result` with a [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Packages on disk, by package digest.
#[derive(Debug, Clone)]
pub struct PackageStore {
    blobs: PathBuf,
}

impl PackageStore {
    /// Opens the store in `dir`, creating its directories if needed.
    pub fn open(dir: impl AsRef<Path>) -> Result<PackageStore> {
        let blobs = dir.as_ref().join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(io_at(&blobs))?;
        Ok(PackageStore { blobs })
    }

    fn path_of(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// Stores `package` and returns its package digest. Storing a package
    /// that is already there with the same bytes does nothing.
    pub fn put(&self, package: &Package) -> Result<Digest> {
        let digest = package.digest().clone();
        let path = self.path_of(&digest);
        let bytes = package.to_bytes();
        match fs::read(&path) {
            Ok(existing) if existing == bytes => return Ok(digest),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at(&path)(e)),
        }
        let mut temp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.blobs)
            .map_err(io_at(&self.blobs))?;
        temp.write_all(&bytes).map_err(io_at(temp.path()))?;
        temp.as_file().sync_all().map_err(io_at(temp.path()))?;
        temp.persist(&path).map_err(|e| io_at(&path)(e.error))?;
        sync_dir(&self.blobs)?;
        Ok(digest)
    }

    /// The package stored under `digest`, if any. The blob is re-read and
    /// its digest checked, so a damaged file is reported, not returned.
    pub fn get(&self, digest: &Digest) -> Result<Option<Package>> {
        let path = self.path_of(digest);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at(&path)(e)),
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            digest: digest.clone(),
            reason,
        };
        // The store's cap is the format's: what `put` wrote, `get` reads back.
        let package = Package::from_bytes_with_limit(&bytes, usize::MAX)
            .map_err(|e: Refusal| corrupt(e.to_string()))?;
        if package.digest() != digest {
            return Err(corrupt(format!(
                "its content has digest {}",
                package.digest()
            )));
        }
        Ok(Some(package))
    }

    /// The digests of all stored packages, sorted.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut digests = Vec::new();
        for entry in fs::read_dir(&self.blobs).map_err(io_at(&self.blobs))? {
            let entry = entry.map_err(io_at(&self.blobs))?;
            // Temporary files and anything else that is not a digest are skipped.
            if let Some(digest) = entry
                .file_name()
                .to_str()
                .and_then(|name| Digest::parse(&format!("sha256:{name}")))
            {
                digests.push(digest);
            }
        }
        digests.sort();
        Ok(digests)
    }

    /// Removes the package stored under `digest`; `false` if there was none.
    pub fn remove(&self, digest: &Digest) -> Result<bool> {
        let path = self.path_of(digest);
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(&self.blobs)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_at(&path)(e)),
        }
    }
}

/// Makes a rename or removal in `dir` durable. Directories cannot be opened
/// for syncing on every platform; where they cannot, this does nothing.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The highest of `available` that `req` accepts. As in Cargo, a pre-release
/// is a candidate only when `req` names a pre-release of the same
/// `major.minor.patch` (`^1.2.0-beta` accepts `1.2.0-rc.1`; `^1` accepts no
/// pre-release).
pub fn resolve(available: &[semver::Version], req: &semver::VersionReq) -> Option<semver::Version> {
    available.iter().filter(|v| req.matches(v)).max().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;
    use crate::manifest::JIRA;
    use semver::{Version, VersionReq};

    fn package(wasm: &[u8]) -> Package {
        Package::new(JIRA, wasm)
    }

    #[test]
    fn put_get_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = PackageStore::open(dir.path()).unwrap();
        assert_eq!(store.list().unwrap(), vec![]);

        let a = package(b"\0asm a");
        let b = package(b"\0asm b");
        let da = store.put(&a).unwrap();
        assert_eq!(&da, a.digest());
        let path = dir.path().join("blobs/sha256").join(da.hex());
        assert_eq!(fs::read(&path).unwrap(), a.to_bytes());
        assert_eq!(store.put(&a).unwrap(), da, "put is idempotent");
        let db = store.put(&b).unwrap();

        let mut expected = vec![da.clone(), db.clone()];
        expected.sort();
        assert_eq!(store.list().unwrap(), expected);
        assert_eq!(store.get(&da).unwrap(), Some(a.clone()));

        // No temporary files are left behind.
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            2
        );

        assert!(store.remove(&da).unwrap());
        assert!(!store.remove(&da).unwrap());
        assert_eq!(store.get(&da).unwrap(), None);
        assert_eq!(store.list().unwrap(), vec![db]);

        // Reopening sees the same content.
        let again = PackageStore::open(dir.path()).unwrap();
        assert_eq!(again.get(b.digest()).unwrap(), Some(b));
    }

    #[test]
    fn a_new_signature_replaces_the_stored_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = PackageStore::open(dir.path()).unwrap();
        let p = package(b"\0asm");
        let signed = p.sign(&SigningKey::generate());
        let d = store.put(&p).unwrap();
        assert_eq!(store.put(&signed).unwrap(), d);
        assert_eq!(store.get(&d).unwrap(), Some(signed));
        assert_eq!(store.list().unwrap().len(), 1);
    }

    #[test]
    fn damaged_blobs_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = PackageStore::open(dir.path()).unwrap();
        let a = package(b"\0asm a");
        let b = package(b"\0asm b");
        let da = store.put(&a).unwrap();
        let blobs = dir.path().join("blobs/sha256");
        fs::write(blobs.join(da.hex()), b.to_bytes()).unwrap();
        let err = store.get(&da).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the stored package {da} is corrupt: its content has digest {}",
                b.digest()
            )
        );
        fs::write(blobs.join(da.hex()), b"junk").unwrap();
        assert!(matches!(store.get(&da), Err(StoreError::Corrupt { .. })));
        fs::write(blobs.join("not-a-digest"), b"junk").unwrap();
        assert_eq!(store.list().unwrap(), vec![da]);
    }

    #[test]
    fn resolve_picks_the_highest_match() {
        let versions: Vec<Version> = [
            "0.1.0",
            "0.1.5",
            "0.2.0",
            "1.0.0",
            "1.4.2",
            "2.0.0-rc.1",
            "1.5.0-beta.1",
        ]
        .iter()
        .map(|v| Version::parse(v).unwrap())
        .collect();
        let pick =
            |req: &str| resolve(&versions, &VersionReq::parse(req).unwrap()).map(|v| v.to_string());
        assert_eq!(pick("^0.1"), Some("0.1.5".into()));
        assert_eq!(pick("^1"), Some("1.4.2".into()));
        assert_eq!(pick("*"), Some("1.4.2".into()));
        assert_eq!(
            pick(">=1.0.0"),
            Some("1.4.2".into()),
            "no pre-release unless named"
        );
        assert_eq!(pick("^2.0.0-rc.0"), Some("2.0.0-rc.1".into()));
        assert_eq!(pick("^1.5.0-beta"), Some("1.5.0-beta.1".into()));
        assert_eq!(pick("=0.2.0"), Some("0.2.0".into()));
        assert_eq!(pick("^3"), None);
        assert_eq!(resolve(&[], &VersionReq::STAR), None);
    }
}
