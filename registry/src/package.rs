//! A plugin package (`.jpkg`): one file holding the manifest, the component
//! and optionally a signature.
//!
//! # File format
//!
//! A package is an **uncompressed** POSIX ustar archive with exactly these
//! regular-file entries, at the top level, each at most once:
//!
//! | entry            | content                                   | cap |
//! |------------------|-------------------------------------------|-----|
//! | `plugin.toml`    | the [`Manifest`](crate::Manifest), UTF-8  | [`MAX_MANIFEST_BYTES`] |
//! | `plugin.wasm`    | the component                             | the component cap (default [`DEFAULT_MAX_COMPONENT_BYTES`]) |
//! | `signature.toml` | optional: `key_id`, `algorithm = "ed25519"`, `signature` (base64) | [`MAX_SIGNATURE_BYTES`] |
//!
//! Uncompressed, because a component is already dense, the caps then bound
//! what is read (no decompression bombs), and transports compress anyway.
//! [`Package::to_bytes`] writes the entries in the order above with zeroed
//! owners and times, so the same package always gives the same bytes.
//!
//! # Digests
//!
//! The **package digest** names a package in the store and is what a
//! signature signs. It covers the manifest and the component, not the
//! signature:
//!
//! ```text
//! sha256:hex( sha256( "junction-package-v1\0" || sha256(plugin.toml) || sha256(plugin.wasm) ) )
//! ```
//!
//! where the inner hashes are the raw 32-byte digests. The domain prefix
//! keeps a package digest from ever equalling the digest of some other
//! content; hashing each part first fixes where one part ends. The
//! **component digest**, [`Digest::of`] the wasm bytes alone, is unchanged
//! and is what [`Inspection::digest`](crate::Inspection) reports.
//!
//! A signature is the ed25519 signature of the package digest's text
//! (`sha256:<hex>`, as UTF-8 bytes).

use sha2::{Digest as _, Sha256};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::signing::{ALGORITHM, SigningKey, TrustedKeys};
use crate::{DEFAULT_MAX_COMPONENT_BYTES, Digest, Refusal};

/// The manifest's entry name.
pub const MANIFEST_ENTRY: &str = "plugin.toml";
/// The component's entry name.
pub const WASM_ENTRY: &str = "plugin.wasm";
/// The signature's entry name.
pub const SIGNATURE_ENTRY: &str = "signature.toml";

/// Largest `plugin.toml`, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;
/// Largest `signature.toml`, in bytes.
pub const MAX_SIGNATURE_BYTES: usize = 4 * 1024;

const DIGEST_DOMAIN: &[u8] = b"junction-package-v1\0";
const BLOCK: usize = 512;

/// A signature carried by a package (`signature.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Id of the key that signed (see [`PublicKey::key_id`](crate::PublicKey::key_id)).
    pub key_id: String,
    /// The 64-byte ed25519 signature of the package digest's text.
    pub bytes: Vec<u8>,
}

impl Signature {
    /// The signature as `signature.toml` text.
    pub fn to_toml(&self) -> String {
        let s = |v: &str| toml::Value::String(v.to_string());
        format!(
            "key_id = {}\nalgorithm = {}\nsignature = {}\n",
            s(&self.key_id),
            s(ALGORITHM),
            s(&BASE64.encode(&self.bytes))
        )
    }

    /// Reads `signature.toml` text.
    pub fn parse(text: &str) -> Result<Signature, String> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            key_id: String,
            algorithm: String,
            signature: String,
        }
        let raw: Raw = toml::from_str(text).map_err(|e| e.message().to_string())?;
        if raw.algorithm != ALGORITHM {
            return Err(format!(
                "`algorithm` {:?} is not supported; use \"{ALGORITHM}\"",
                raw.algorithm
            ));
        }
        let bytes = BASE64
            .decode(raw.signature.trim())
            .map_err(|e| format!("`signature` is not base64: {e}"))?;
        Ok(Signature {
            key_id: raw.key_id,
            bytes,
        })
    }
}

/// Whether a package's signature is good and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureStatus {
    /// The package carries no signature.
    Unsigned,
    /// Signed by a trusted key, and the signature matches the package.
    Trusted {
        /// The signer's key id.
        key_id: String,
    },
    /// Signed by a key that is not trusted (so the signature was not checked).
    Untrusted {
        /// The claimed signer's key id.
        key_id: String,
    },
    /// Names a trusted key but does not verify: the manifest or the component
    /// changed after signing, or another key signed.
    Invalid {
        /// The claimed signer's key id.
        key_id: String,
    },
}

/// A plugin package: manifest text, component bytes and an optional signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    manifest: String,
    wasm: Vec<u8>,
    signature: Option<Signature>,
    digest: Digest,
}

impl Package {
    /// An unsigned package. Nothing is checked here; see [`crate::validate`].
    pub fn new(manifest_text: impl Into<String>, wasm: impl Into<Vec<u8>>) -> Package {
        let manifest = manifest_text.into();
        let wasm = wasm.into();
        let digest = package_digest(manifest.as_bytes(), &wasm);
        Package {
            manifest,
            wasm,
            signature: None,
            digest,
        }
    }

    /// The `plugin.toml` text.
    pub fn manifest_text(&self) -> &str {
        &self.manifest
    }

    /// The component bytes.
    pub fn wasm(&self) -> &[u8] {
        &self.wasm
    }

    /// The signature, if the package carries one.
    pub fn signature(&self) -> Option<&Signature> {
        self.signature.as_ref()
    }

    /// The package digest (see the module docs).
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The same package signed by `key`, replacing any earlier signature.
    pub fn sign(&self, key: &SigningKey) -> Package {
        Package {
            signature: Some(Signature {
                key_id: key.key_id(),
                bytes: key.sign_bytes(self.digest.as_str().as_bytes()),
            }),
            ..self.clone()
        }
    }

    /// The same package without a signature.
    pub fn unsigned(&self) -> Package {
        Package {
            signature: None,
            ..self.clone()
        }
    }

    /// Checks the signature against `trusted`.
    pub fn verify(&self, trusted: &TrustedKeys) -> SignatureStatus {
        let Some(signature) = &self.signature else {
            return SignatureStatus::Unsigned;
        };
        let key_id = signature.key_id.clone();
        match trusted.get(&key_id) {
            None => SignatureStatus::Untrusted { key_id },
            Some(key) if key.verifies(self.digest.as_str().as_bytes(), &signature.bytes) => {
                SignatureStatus::Trusted { key_id }
            }
            Some(_) => SignatureStatus::Invalid { key_id },
        }
    }

    /// Reads a `.jpkg` with the default component cap.
    pub fn from_bytes(bytes: &[u8]) -> Result<Package, Refusal> {
        Package::from_bytes_with_limit(bytes, DEFAULT_MAX_COMPONENT_BYTES)
    }

    /// Reads a `.jpkg`, refusing a component over `max_component_bytes`
    /// before reading it.
    pub fn from_bytes_with_limit(
        bytes: &[u8],
        max_component_bytes: usize,
    ) -> Result<Package, Refusal> {
        let bad = |why: String| Refusal::BadPackage(why);
        if bytes.is_empty() {
            return Err(Refusal::Empty);
        }
        if bytes.starts_with(&[0x1f, 0x8b]) {
            return Err(bad(
                "it is gzip-compressed; a package is an uncompressed tar archive".into(),
            ));
        }
        if bytes.len() < BLOCK || bytes.get(257..262) != Some(b"ustar".as_slice()) {
            return Err(bad("it is not a tar archive".into()));
        }

        let corrupt = |e: std::io::Error| bad(format!("the tar archive is corrupt: {e}"));
        let mut manifest = None;
        let mut wasm = None;
        let mut signature = None;
        let mut archive = tar::Archive::new(bytes);
        for entry in archive.entries().map_err(corrupt)? {
            let mut entry = entry.map_err(corrupt)?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            if name.starts_with('/')
                || name.contains('\\')
                || name.split('/').any(|part| part == "..")
            {
                return Err(bad(format!("entry `{name}` points outside the package")));
            }
            let (slot, limit) = match name.as_str() {
                MANIFEST_ENTRY => (&mut manifest, MAX_MANIFEST_BYTES),
                WASM_ENTRY => (&mut wasm, max_component_bytes),
                SIGNATURE_ENTRY => (&mut signature, MAX_SIGNATURE_BYTES),
                _ => {
                    return Err(bad(format!(
                        "unexpected entry `{name}`; a package holds only {MANIFEST_ENTRY}, {WASM_ENTRY} and {SIGNATURE_ENTRY}"
                    )));
                }
            };
            if slot.is_some() {
                return Err(bad(format!("entry `{name}` appears more than once")));
            }
            if entry.header().entry_type() != tar::EntryType::Regular {
                return Err(bad(format!("entry `{name}` is not a regular file")));
            }
            let size = usize::try_from(entry.size()).unwrap_or(usize::MAX);
            if size > limit {
                return Err(if name == WASM_ENTRY {
                    Refusal::TooLarge { size, limit }
                } else {
                    bad(format!(
                        "entry `{name}` is {size} bytes; the limit is {limit} bytes"
                    ))
                });
            }
            let mut data = Vec::with_capacity(size);
            std::io::Read::read_to_end(&mut entry, &mut data).map_err(corrupt)?;
            if data.len() != size {
                return Err(bad(format!("entry `{name}` is truncated")));
            }
            *slot = Some(data);
        }

        let missing = |entry: &str| bad(format!("entry `{entry}` is missing"));
        let manifest = manifest.ok_or_else(|| missing(MANIFEST_ENTRY))?;
        let wasm = wasm.ok_or_else(|| missing(WASM_ENTRY))?;
        let manifest = String::from_utf8(manifest)
            .map_err(|_| bad(format!("entry `{MANIFEST_ENTRY}` is not UTF-8")))?;
        let signature = signature
            .map(|data| {
                let text = std::str::from_utf8(&data)
                    .map_err(|_| format!("entry `{SIGNATURE_ENTRY}` is not UTF-8"))?;
                Signature::parse(text).map_err(|why| format!("`{SIGNATURE_ENTRY}`: {why}"))
            })
            .transpose()
            .map_err(bad)?;
        let mut package = Package::new(manifest, wasm);
        package.signature = signature;
        Ok(package)
    }

    /// The package as a `.jpkg` file (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let signature = self.signature.as_ref().map(Signature::to_toml);
        let mut entries = vec![
            (MANIFEST_ENTRY, self.manifest.as_bytes()),
            (WASM_ENTRY, self.wasm.as_slice()),
        ];
        if let Some(signature) = &signature {
            entries.push((SIGNATURE_ENTRY, signature.as_bytes()));
        }
        let mut out = Vec::with_capacity(
            entries
                .iter()
                .map(|(_, d)| d.len() + 2 * BLOCK)
                .sum::<usize>()
                + 2 * BLOCK,
        );
        for (name, data) in entries {
            let mut header = tar::Header::new_ustar();
            // The names are constants shorter than the field.
            let field = &mut header.as_old_mut().name;
            let len = name.len().min(field.len());
            field[..len].copy_from_slice(&name.as_bytes()[..len]);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            header.set_cksum();
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().next_multiple_of(BLOCK), 0);
        }
        // End of archive: two zero blocks.
        out.resize(out.len() + 2 * BLOCK, 0);
        out
    }
}

/// The package digest of a manifest and a component (see the module docs).
pub fn package_digest(manifest: &[u8], wasm: &[u8]) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update(DIGEST_DOMAIN);
    hasher.update(Sha256::digest(manifest));
    hasher.update(Sha256::digest(wasm));
    Digest::from_sha256(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::JIRA;

    const WASM: &[u8] = b"\0asm\x0d\0\x01\0not really a component";

    fn package() -> Package {
        Package::new(JIRA, WASM)
    }

    /// A tar built with the tar crate's own writer, so tests do not depend on
    /// `to_bytes` to make hostile archives.
    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            // `append_data` refuses `..`; write the name field directly.
            let field = &mut header.as_old_mut().name;
            field[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn refusal(bytes: &[u8]) -> String {
        Package::from_bytes(bytes).unwrap_err().to_string()
    }

    #[test]
    fn digest_is_domain_separated_over_both_parts() {
        let p = package();
        let mut inner = Vec::new();
        inner.extend_from_slice(b"junction-package-v1\0");
        inner.extend_from_slice(&Sha256::digest(JIRA.as_bytes()));
        inner.extend_from_slice(&Sha256::digest(WASM));
        assert_eq!(p.digest(), &Digest::of(&inner));
        assert_ne!(p.digest(), &Digest::of(WASM));
        // Moving bytes between the parts changes the digest.
        let shifted = Package::new(
            &JIRA[..JIRA.len() - 1],
            [&JIRA.as_bytes()[JIRA.len() - 1..], WASM].concat(),
        );
        assert_ne!(shifted.digest(), p.digest());
        // The signature is not part of it.
        assert_eq!(p.sign(&SigningKey::generate()).digest(), p.digest());
    }

    #[test]
    fn round_trips_signed_and_unsigned() {
        let p = package();
        let bytes = p.to_bytes();
        assert_eq!(bytes.len() % BLOCK, 0);
        assert_eq!(Package::from_bytes(&bytes).unwrap(), p);
        assert_eq!(p.to_bytes(), bytes, "the same package gives the same bytes");

        let signed = p.sign(&SigningKey::generate());
        let back = Package::from_bytes(&signed.to_bytes()).unwrap();
        assert_eq!(back, signed);
        assert_eq!(back.unsigned(), p);

        // Other tar writers are read too.
        let other = tar_of(&[(MANIFEST_ENTRY, JIRA.as_bytes()), (WASM_ENTRY, WASM)]);
        assert_eq!(Package::from_bytes(&other).unwrap(), p);
    }

    #[test]
    fn signatures_are_checked_against_trusted_keys() {
        let key = SigningKey::generate();
        let trusted = TrustedKeys::parse([key.public_key().to_string()]).unwrap();
        let key_id = key.key_id();
        let p = package();
        assert_eq!(p.verify(&trusted), SignatureStatus::Unsigned);
        let signed = p.sign(&key);
        assert_eq!(
            signed.verify(&trusted),
            SignatureStatus::Trusted {
                key_id: key_id.clone()
            }
        );
        assert_eq!(
            signed.verify(&TrustedKeys::new()),
            SignatureStatus::Untrusted {
                key_id: key_id.clone()
            }
        );

        let sig = signed.signature().unwrap().clone();
        let mut tampered_wasm = Package::new(JIRA, [WASM, b"!"].concat());
        tampered_wasm.signature = Some(sig.clone());
        assert_eq!(
            tampered_wasm.verify(&trusted),
            SignatureStatus::Invalid {
                key_id: key_id.clone()
            }
        );
        let mut tampered_manifest = Package::new(JIRA.replace("0.1.0\"", "0.1.1\""), WASM);
        tampered_manifest.signature = Some(sig.clone());
        assert_eq!(
            tampered_manifest.verify(&trusted),
            SignatureStatus::Invalid {
                key_id: key_id.clone()
            }
        );

        // Tampering inside the file is caught the same way.
        let file = signed.to_bytes();
        let at = file.windows(WASM.len()).position(|w| w == WASM).unwrap();
        let mut altered = file.clone();
        altered[at + WASM.len() - 1] ^= 1;
        let read = Package::from_bytes(&altered).unwrap();
        assert_eq!(
            read.verify(&trusted),
            SignatureStatus::Invalid {
                key_id: key_id.clone()
            }
        );

        // Another key claiming a trusted key's id does not pass.
        let impostor = SigningKey::generate();
        let mut forged = p.sign(&impostor);
        if let Some(s) = forged.signature.as_mut() {
            s.key_id = key_id.clone();
        }
        assert_eq!(forged.verify(&trusted), SignatureStatus::Invalid { key_id });
    }

    #[test]
    fn refuses_what_is_not_a_package() {
        assert_eq!(Package::from_bytes(b""), Err(Refusal::Empty));
        assert_eq!(
            refusal(b"\0asm\x0d\0\x01\0"),
            "not a valid Junction package: it is not a tar archive"
        );
        assert_eq!(
            refusal(&[0u8; 2048]),
            "not a valid Junction package: it is not a tar archive"
        );
        assert_eq!(
            refusal(&[0x1f, 0x8b, 8, 0]),
            "not a valid Junction package: it is gzip-compressed; a package is an uncompressed tar archive"
        );
        let mut corrupt = package().to_bytes();
        corrupt[148] ^= 0x01; // the checksum field
        assert!(
            refusal(&corrupt)
                .starts_with("not a valid Junction package: the tar archive is corrupt")
        );
        let truncated = &package().to_bytes()[..BLOCK + 10];
        assert!(Package::from_bytes(truncated).is_err());
    }

    #[test]
    fn refuses_missing_extra_duplicate_and_escaping_entries() {
        let m = (MANIFEST_ENTRY, JIRA.as_bytes());
        let w = (WASM_ENTRY, WASM);
        assert_eq!(
            refusal(&tar_of(&[m])),
            "not a valid Junction package: entry `plugin.wasm` is missing"
        );
        assert_eq!(
            refusal(&tar_of(&[w])),
            "not a valid Junction package: entry `plugin.toml` is missing"
        );
        assert_eq!(
            refusal(&tar_of(&[m, w, ("README.md", b"hi")])),
            "not a valid Junction package: unexpected entry `README.md`; a package holds only plugin.toml, plugin.wasm and signature.toml"
        );
        assert_eq!(
            refusal(&tar_of(&[m, w, w])),
            "not a valid Junction package: entry `plugin.wasm` appears more than once"
        );
        for name in [
            "../plugin.wasm",
            "/plugin.wasm",
            "a/../../plugin.toml",
            "..\\plugin.wasm",
        ] {
            assert_eq!(
                refusal(&tar_of(&[m, (name, WASM)])),
                format!("not a valid Junction package: entry `{name}` points outside the package")
            );
        }
        assert!(
            refusal(&tar_of(&[m, w, (SIGNATURE_ENTRY, b"key_id = 1")])).contains("signature.toml")
        );
        let bad_algorithm = "key_id = \"ab\"\nalgorithm = \"rsa\"\nsignature = \"AAAA\"\n";
        assert_eq!(
            refusal(&tar_of(&[
                m,
                w,
                (SIGNATURE_ENTRY, bad_algorithm.as_bytes())
            ])),
            "not a valid Junction package: `signature.toml`: `algorithm` \"rsa\" is not supported; use \"ed25519\""
        );
        assert_eq!(
            refusal(&tar_of(&[(MANIFEST_ENTRY, b"\xff\xfe"), w])),
            "not a valid Junction package: entry `plugin.toml` is not UTF-8"
        );
    }

    #[test]
    fn refuses_links_and_directories() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder
            .append_link(&mut header, WASM_ENTRY, "/etc/passwd")
            .unwrap();
        let bytes = builder.into_inner().unwrap();
        assert_eq!(
            refusal(&bytes),
            "not a valid Junction package: entry `plugin.wasm` is not a regular file"
        );
    }

    #[test]
    fn refuses_oversized_entries_before_reading_them() {
        let p = package();
        assert_eq!(
            Package::from_bytes_with_limit(&p.to_bytes(), WASM.len() - 1),
            Err(Refusal::TooLarge {
                size: WASM.len(),
                limit: WASM.len() - 1
            })
        );
        let big = vec![b'#'; MAX_MANIFEST_BYTES + 1];
        assert_eq!(
            refusal(&tar_of(&[(MANIFEST_ENTRY, &big), (WASM_ENTRY, WASM)])),
            format!(
                "not a valid Junction package: entry `plugin.toml` is {} bytes; the limit is {MAX_MANIFEST_BYTES} bytes",
                MAX_MANIFEST_BYTES + 1
            )
        );
    }
}
