//! Junction plugin packages: what a component is, and whether the host may run it.
//!
//! Validation happens before any code runs and before anything is compiled:
//! the bytes must be a WebAssembly component (not a core module), export one
//! of the `junction:plugin` worlds, and import nothing that world does not
//! offer. A refusal lists every problem, so a plugin author fixes them in one go.
//!
//! ```
//! use junction_registry::{inspect, Refusal};
//!
//! // A core module is not a plugin.
//! let core_module = b"\0asm\x01\0\0\0";
//! let err = inspect(core_module).unwrap_err();
//! assert!(matches!(err, Refusal::CoreModule));
//! ```
//!
//! A package (`.jpkg`, see [`package`]) carries the component with its
//! manifest ([`Manifest`]) and optionally an ed25519 signature ([`signing`]);
//! [`validate`] decides whether a host may load it, [`check_info`] compares
//! the manifest with what the running component says, and [`PackageStore`]
//! keeps packages on disk by digest.

#![deny(missing_docs)]

use std::collections::BTreeSet;
use std::fmt;

pub mod manifest;
pub mod package;
pub mod signing;
pub mod store;
mod validate;

pub use manifest::{Auth, Capabilities, Limits, Manifest, ManifestError, Plugin, SUPPORTED_WIT};
pub use package::{Package, Signature, SignatureStatus, package_digest};
pub use signing::{KeyError, PublicKey, SigningKey, TrustedKeys};
pub use store::{PackageStore, StoreError, resolve};
pub use validate::{Policy, Validated, check_info, validate, validate_with};

use sha2::{Digest as _, Sha256};
use wasmparser::{ComponentTypeRef, Parser, Payload};

/// The version of the `junction:plugin` package this host speaks.
pub const WIT_VERSION: &str = "0.1.0";

/// Largest component accepted, in bytes.
pub const DEFAULT_MAX_COMPONENT_BYTES: usize = 32 * 1024 * 1024;

/// Why a component is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The input was empty.
    #[error("the package is empty")]
    Empty,
    /// The input is larger than the cap.
    #[error("the component is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The cap.
        limit: usize,
    },
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly component (no `\\0asm` header)")]
    NotWasm,
    /// The bytes are a core module, not a component.
    #[error(
        "this is a core WebAssembly module, not a component; build the plugin for the wasm32-wasip2 target (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    /// The bytes do not parse.
    #[error("the component is malformed: {0}")]
    Malformed(String),
    /// The component exports neither world's functions.
    #[error(
        "the component targets neither the `connector` nor the `transform` world of junction:plugin@{WIT_VERSION}: it exports [{}]; a connector exports [info, check, invoke, read, handle-webhook] and a transform exports [info, apply]",
        .exports.join(", ")
    )]
    UnknownWorld {
        /// What the component exports.
        exports: Vec<String>,
    },
    /// The component imports interfaces its world does not offer.
    #[error(
        "the component imports what the `{world}` world does not offer: {}",
        .imports.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
    )]
    ForbiddenImports {
        /// The world the component targets.
        world: World,
        /// Every offending import, sorted.
        imports: Vec<String>,
    },
    /// The package file is not a well-formed package.
    #[error("not a valid Junction package: {0}")]
    BadPackage(String),
    /// `plugin.toml` does not parse or is refused.
    #[error("plugin.toml is invalid: {0}")]
    BadManifest(#[from] ManifestError),
    /// The manifest names one world and the component targets the other.
    #[error(
        "plugin.toml declares the `{manifest}` world, but the component targets the `{component}` world"
    )]
    WorldMismatch {
        /// The world in `plugin.toml`.
        manifest: World,
        /// The world the component exports.
        component: World,
    },
    /// The host requires signatures and the package has none.
    #[error(
        "the package is not signed, and this host accepts only packages signed by a trusted key: \
         sign it (`junction plugin sign <package> --key <key file>`) with a key in its `trusted_keys`"
    )]
    Unsigned,
    /// The package is signed by a key the host does not trust.
    #[error(
        "the package is signed by key {key_id}, which this host does not trust: add the signer's \
         public key to `trusted_keys` in the host's configuration and reload it \
         (`POST /v1/admin/reload` or SIGHUP), no restart needed"
    )]
    UntrustedSigner {
        /// The signer's key id.
        key_id: String,
    },
    /// The signature does not verify.
    #[error(
        "the signature by key {key_id} does not match the package: the manifest or the component changed after signing"
    )]
    BadSignature {
        /// The claimed signer's key id.
        key_id: String,
    },
    /// The manifest disagrees with the component's `info`.
    #[error(
        "plugin.toml does not match what the component's `info` reports: {}",
        .differences.join("; ")
    )]
    ManifestMismatch {
        /// Every difference, one sentence each.
        differences: Vec<String>,
    },
}

/// The `junction:plugin` worlds a component can target.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// Talks to one external system: `info`, `check`, `invoke`, `read`, `handle-webhook`.
    Connector,
    /// A pure mapping: `info`, `apply`.
    Transform,
}

impl World {
    /// The world's name in WIT.
    pub fn as_str(self) -> &'static str {
        match self {
            World::Connector => "connector",
            World::Transform => "transform",
        }
    }

    /// The functions a component of this world exports.
    pub fn exports(self) -> &'static [&'static str] {
        match self {
            World::Connector => &["info", "check", "invoke", "read", "handle-webhook"],
            World::Transform => &["info", "apply"],
        }
    }

    /// Whether a component of this world may import `name` (a versioned
    /// interface name such as `wasi:http/types@0.2.6`).
    pub fn allows_import(self, name: &str) -> bool {
        let Some((interface, version)) = name.split_once('@') else {
            return false;
        };
        let Some((package, iface)) = interface.split_once('/') else {
            return false;
        };
        match package {
            "junction:plugin" => {
                version == WIT_VERSION
                    && match iface {
                        "types" | "log" | "config" => true,
                        "kv" => self == World::Connector,
                        _ => false,
                    }
            }
            // Every 0.2.x release of WASI is linked to the host's 0.2 implementation.
            _ if !version.starts_with("0.2.") => false,
            // What Rust's standard library needs to start and to panic; the host
            // gives no arguments, no environment and no terminal, and routes
            // stdout/stderr into the plugin's log.
            "wasi:io" => matches!(iface, "error" | "poll" | "streams"),
            "wasi:clocks" => matches!(iface, "monotonic-clock" | "wall-clock"),
            "wasi:random" => matches!(iface, "random" | "insecure" | "insecure-seed"),
            "wasi:cli" => matches!(
                iface,
                "environment"
                    | "exit"
                    | "stdin"
                    | "stdout"
                    | "stderr"
                    | "terminal-input"
                    | "terminal-output"
                    | "terminal-stdin"
                    | "terminal-stdout"
                    | "terminal-stderr"
            ),
            "wasi:http" => {
                self == World::Connector && matches!(iface, "types" | "outgoing-handler")
            }
            _ => false,
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sha256 digest of a component, written `sha256:<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Digest(String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// The digest as text, `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 lowercase hex characters after `sha256:`.
    pub fn hex(&self) -> &str {
        self.0.strip_prefix("sha256:").unwrap_or(&self.0)
    }

    /// Reads `sha256:<64 lowercase hex>`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Digest> {
        let hex = text.strip_prefix("sha256:")?;
        let well_formed = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        well_formed.then(|| Digest(text.to_string()))
    }

    /// The digest whose raw sha256 bytes are `hash`.
    pub(crate) fn from_sha256(hash: [u8; 32]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(hash)))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a component is, as far as the host needs to know before running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The world it targets.
    pub world: World,
    /// Its top-level imports, sorted.
    pub imports: Vec<String>,
    /// Its top-level exports, sorted.
    pub exports: Vec<String>,
    /// Its digest.
    pub digest: Digest,
}

/// Inspects `bytes` with the default size cap. See [`inspect_with_limit`].
pub fn inspect(bytes: &[u8]) -> Result<Inspection, Refusal> {
    inspect_with_limit(bytes, DEFAULT_MAX_COMPONENT_BYTES)
}

/// Checks that `bytes` are a component of a `junction:plugin` world that
/// imports only what that world offers, without compiling it.
pub fn inspect_with_limit(bytes: &[u8], limit: usize) -> Result<Inspection, Refusal> {
    if bytes.is_empty() {
        return Err(Refusal::Empty);
    }
    if bytes.len() > limit {
        return Err(Refusal::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    if !bytes.starts_with(b"\0asm") {
        return Err(Refusal::NotWasm);
    }
    if Parser::is_core_wasm(bytes) {
        return Err(Refusal::CoreModule);
    }
    if !Parser::is_component(bytes) {
        return Err(Refusal::Malformed(
            "unknown WebAssembly encoding version".into(),
        ));
    }

    let (imports, exports) = top_level_names(bytes)?;
    let world = [World::Connector, World::Transform]
        .into_iter()
        .find(|world| world.exports().iter().all(|e| exports.contains(*e)))
        .ok_or_else(|| Refusal::UnknownWorld {
            exports: exports.iter().cloned().collect(),
        })?;
    let forbidden: Vec<String> = imports
        .iter()
        .filter(|name| !world.allows_import(name))
        .cloned()
        .collect();
    if !forbidden.is_empty() {
        return Err(Refusal::ForbiddenImports {
            world,
            imports: forbidden,
        });
    }
    Ok(Inspection {
        world,
        imports: imports.into_iter().collect(),
        exports: exports.into_iter().collect(),
        digest: Digest::of(bytes),
    })
}

type Names = BTreeSet<String>;

/// The import and export names of the outermost component; nested modules and
/// components are the implementation's business and are skipped.
fn top_level_names(bytes: &[u8]) -> Result<(Names, Names), Refusal> {
    let malformed = |e: wasmparser::BinaryReaderError| Refusal::Malformed(e.message().to_string());
    let mut imports = Names::new();
    let mut exports = Names::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(malformed)? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(malformed)?;
                    // Type imports only name types of imported interfaces (a world's
                    // `use types.{..}`); what can be called is an instance or a function.
                    if !matches!(import.ty, ComponentTypeRef::Type(_)) {
                        imports.insert(import.name.name.to_string());
                    }
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    exports.insert(export.map_err(malformed)?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_garbage_are_refused() {
        assert_eq!(inspect(b""), Err(Refusal::Empty));
        assert_eq!(inspect(b"not wasm at all"), Err(Refusal::NotWasm));
    }

    #[test]
    fn core_module_is_refused_with_a_hint() {
        let err = inspect(b"\0asm\x01\0\0\0").unwrap_err();
        assert_eq!(err, Refusal::CoreModule);
        assert!(err.to_string().contains("wasm32-wasip2"));
    }

    #[test]
    fn size_cap_is_checked_first() {
        let err = inspect_with_limit(&[0u8; 10], 4).unwrap_err();
        assert_eq!(err, Refusal::TooLarge { size: 10, limit: 4 });
    }

    #[test]
    fn truncated_component_is_malformed() {
        // A component header followed by a section that claims more bytes than follow.
        let bytes = b"\0asm\x0d\0\x01\0\x07\x10\x01";
        assert!(matches!(inspect(bytes), Err(Refusal::Malformed(_))));
    }

    #[test]
    fn import_policy_per_world() {
        let c = World::Connector;
        let t = World::Transform;
        assert!(c.allows_import("wasi:http/outgoing-handler@0.2.12"));
        assert!(c.allows_import("wasi:http/types@0.2.0"));
        assert!(!t.allows_import("wasi:http/outgoing-handler@0.2.12"));
        assert!(c.allows_import("junction:plugin/kv@0.1.0"));
        assert!(!t.allows_import("junction:plugin/kv@0.1.0"));
        assert!(!c.allows_import("junction:plugin/kv@0.2.0"));
        assert!(c.allows_import("wasi:cli/stderr@0.2.6"));
        for forbidden in [
            "wasi:filesystem/types@0.2.6",
            "wasi:filesystem/preopens@0.2.6",
            "wasi:sockets/tcp@0.2.6",
            "wasi:sockets/ip-name-lookup@0.2.6",
            "wasi:http/incoming-handler@0.2.6",
            "wasi:cli/environment@0.3.0",
            "example:other/thing",
            "bare-function",
        ] {
            assert!(!c.allows_import(forbidden), "{forbidden} must be refused");
        }
    }

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            Digest::of(b"abc").as_str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn digests_parse_back() {
        let d = Digest::of(b"abc");
        assert_eq!(Digest::parse(d.as_str()), Some(d.clone()));
        assert_eq!(d.hex().len(), 64);
        for bad in [
            "",
            "sha256:",
            "sha1:ab",
            &d.as_str().to_uppercase(),
            &format!("{d}0"),
            &d.as_str().replace('a', "g"),
        ] {
            assert_eq!(Digest::parse(bad), None, "{bad}");
        }
    }
}
