//! Whether the host may load a package: size, signature, manifest, component.

use std::collections::BTreeSet;

use crate::manifest::Manifest;
use crate::package::{Package, SignatureStatus};
use crate::signing::TrustedKeys;
use crate::{DEFAULT_MAX_COMPONENT_BYTES, Digest, Inspection, Refusal};

/// What a host accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Largest component, in bytes.
    pub max_component_bytes: usize,
    /// Refuse packages that are not signed by a trusted key.
    pub require_signatures: bool,
    /// The keys whose signatures are accepted.
    pub trusted: TrustedKeys,
}

impl Default for Policy {
    /// The default cap, signatures optional, no trusted keys.
    fn default() -> Policy {
        Policy {
            max_component_bytes: DEFAULT_MAX_COMPONENT_BYTES,
            require_signatures: false,
            trusted: TrustedKeys::new(),
        }
    }
}

/// A package that passed [`validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// Its parsed manifest.
    pub manifest: Manifest,
    /// What its component is.
    pub inspection: Inspection,
    /// Its package digest.
    pub package_digest: Digest,
    /// The key id of the trusted signer; `None` if unsigned (and allowed).
    pub signer: Option<String>,
}

/// Checks `package` against `policy`, inspecting the component with
/// [`crate::inspect_with_limit`]. See [`validate_with`] for the order of checks.
pub fn validate(package: &Package, policy: &Policy) -> Result<Validated, Refusal> {
    validate_with(package, policy, crate::inspect_with_limit)
}

/// [`validate`] with the component inspection supplied by the caller.
///
/// The checks, in order, cheapest and least trusting first:
/// 1. the component is within `policy.max_component_bytes` ([`Refusal::TooLarge`]);
/// 2. the signature: a signature that does not verify is refused
///    ([`Refusal::BadSignature`]), and so is one by a key that is not trusted
///    ([`Refusal::UntrustedSigner`]) whether or not signatures are required, so
///    a wrong signature is never silently accepted; an unsigned package is
///    refused only when signatures are required ([`Refusal::Unsigned`]);
/// 3. the manifest parses, which includes a supported WIT version ([`Refusal::BadManifest`]);
/// 4. the component passes `inspect` (the existing refusals);
/// 5. the manifest's world is the component's ([`Refusal::WorldMismatch`]).
pub fn validate_with<F>(
    package: &Package,
    policy: &Policy,
    inspect: F,
) -> Result<Validated, Refusal>
where
    F: FnOnce(&[u8], usize) -> Result<Inspection, Refusal>,
{
    let size = package.wasm().len();
    if size > policy.max_component_bytes {
        return Err(Refusal::TooLarge {
            size,
            limit: policy.max_component_bytes,
        });
    }
    let signer = match package.verify(&policy.trusted) {
        SignatureStatus::Trusted { key_id } => Some(key_id),
        SignatureStatus::Unsigned if policy.require_signatures => return Err(Refusal::Unsigned),
        SignatureStatus::Unsigned => None,
        SignatureStatus::Untrusted { key_id } => return Err(Refusal::UntrustedSigner { key_id }),
        SignatureStatus::Invalid { key_id } => return Err(Refusal::BadSignature { key_id }),
    };
    let manifest = Manifest::parse(package.manifest_text())?;
    let inspection = inspect(package.wasm(), policy.max_component_bytes)?;
    if manifest.plugin.world != inspection.world {
        return Err(Refusal::WorldMismatch {
            manifest: manifest.plugin.world,
            component: inspection.world,
        });
    }
    Ok(Validated {
        manifest,
        inspection,
        package_digest: package.digest().clone(),
        signer,
    })
}

/// Checks that the manifest says what the component's `info` says: the same
/// name, the same version and the same set of operations. Every difference
/// is listed in one [`Refusal::ManifestMismatch`].
pub fn check_info(
    manifest: &Manifest,
    info_name: &str,
    info_version: &str,
    info_operations: &[String],
) -> Result<(), Refusal> {
    let mut differences = Vec::new();
    let plugin = &manifest.plugin;
    if plugin.name != info_name {
        differences.push(format!(
            "name: plugin.toml says `{}`, the component says `{info_name}`",
            plugin.name
        ));
    }
    let same_version = semver::Version::parse(info_version).is_ok_and(|v| v == plugin.version);
    if !same_version {
        differences.push(format!(
            "version: plugin.toml says `{}`, the component says `{info_version}`",
            plugin.version
        ));
    }
    let declared: BTreeSet<&str> = plugin.operations.iter().map(String::as_str).collect();
    let offered: BTreeSet<&str> = info_operations.iter().map(String::as_str).collect();
    let quoted = |names: Vec<&&str>| {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let only_declared: Vec<_> = declared.difference(&offered).collect();
    if !only_declared.is_empty() {
        differences.push(format!(
            "operations in plugin.toml that the component does not offer: {}",
            quoted(only_declared)
        ));
    }
    let only_offered: Vec<_> = offered.difference(&declared).collect();
    if !only_offered.is_empty() {
        differences.push(format!(
            "operations the component offers that plugin.toml does not list: {}",
            quoted(only_offered)
        ));
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(Refusal::ManifestMismatch { differences })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::JIRA;
    use crate::{SigningKey, World};

    const WASM: &[u8] = b"\0asm\x0d\0\x01\0";

    fn inspected_as(world: World) -> impl FnOnce(&[u8], usize) -> Result<Inspection, Refusal> {
        move |bytes, _| {
            Ok(Inspection {
                world,
                imports: vec![],
                exports: world.exports().iter().map(|e| e.to_string()).collect(),
                digest: Digest::of(bytes),
            })
        }
    }

    fn connector(package: &Package, policy: &Policy) -> Result<Validated, Refusal> {
        validate_with(package, policy, inspected_as(World::Connector))
    }

    fn trusting(key: &SigningKey, require: bool) -> Policy {
        Policy {
            require_signatures: require,
            trusted: TrustedKeys::parse([key.public_key().to_string()]).unwrap(),
            ..Policy::default()
        }
    }

    #[test]
    fn an_unsigned_package_passes_when_signatures_are_optional() {
        let package = Package::new(JIRA, WASM);
        let v = connector(&package, &Policy::default()).unwrap();
        assert_eq!(v.manifest.plugin.name, "jira");
        assert_eq!(v.package_digest, *package.digest());
        assert_eq!(v.inspection.digest, Digest::of(WASM));
        assert_eq!(v.signer, None);
    }

    #[test]
    fn signature_rules() {
        let key = SigningKey::generate();
        let stranger = SigningKey::generate();
        let package = Package::new(JIRA, WASM);

        let err = connector(&package, &trusting(&key, true)).unwrap_err();
        assert_eq!(err, Refusal::Unsigned);
        let message = err.to_string();
        assert!(
            message.starts_with(
                "the package is not signed, and this host accepts only packages signed by a trusted key"
            ),
            "{message}"
        );
        assert!(message.contains("junction plugin sign"), "{message}");

        for require in [true, false] {
            let v = connector(&package.sign(&key), &trusting(&key, require)).unwrap();
            assert_eq!(v.signer, Some(key.key_id()));

            let err = connector(&package.sign(&stranger), &trusting(&key, require)).unwrap_err();
            assert_eq!(
                err,
                Refusal::UntrustedSigner {
                    key_id: stranger.key_id()
                }
            );
            let message = err.to_string();
            assert!(
                message.starts_with(&format!(
                    "the package is signed by key {}, which this host does not trust",
                    stranger.key_id()
                )),
                "{message}"
            );
            assert!(message.contains("`trusted_keys`"), "{message}");
        }
        // Signed but nothing trusted, signatures optional: still refused.
        assert!(matches!(
            connector(&package.sign(&stranger), &Policy::default()),
            Err(Refusal::UntrustedSigner { .. })
        ));

        // Tampered after signing.
        let signed = package.sign(&key);
        let mut file = signed.to_bytes();
        let at = file.windows(6).position(|w| w == b"\"jira\"").unwrap();
        file[at + 1] = b'k';
        let tampered = Package::from_bytes(&file).unwrap();
        let err = connector(&tampered, &trusting(&key, false)).unwrap_err();
        assert_eq!(
            err,
            Refusal::BadSignature {
                key_id: key.key_id()
            }
        );
        assert_eq!(
            err.to_string(),
            format!(
                "the signature by key {} does not match the package: the manifest or the component changed after signing",
                key.key_id()
            )
        );
    }

    #[test]
    fn size_manifest_and_world_are_checked() {
        let package = Package::new(JIRA, WASM);
        let policy = Policy {
            max_component_bytes: 4,
            ..Policy::default()
        };
        assert_eq!(
            connector(&package, &policy),
            Err(Refusal::TooLarge {
                size: WASM.len(),
                limit: 4
            })
        );

        let bad = Package::new(JIRA.replace("\"connector\"", "\"sink\""), WASM);
        let err = connector(&bad, &Policy::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin.toml is invalid: `plugin.world` \"sink\" is not a junction:plugin world; use `connector` or `transform`"
        );
        let bad = Package::new(JIRA.replace("@0.1.0", "@9.0.0"), WASM);
        assert!(matches!(
            connector(&bad, &Policy::default()),
            Err(Refusal::BadManifest(
                crate::ManifestError::UnsupportedWit { .. }
            ))
        ));

        let err = validate_with(&package, &Policy::default(), inspected_as(World::Transform))
            .unwrap_err();
        assert_eq!(
            err,
            Refusal::WorldMismatch {
                manifest: World::Connector,
                component: World::Transform
            }
        );
        assert_eq!(
            err.to_string(),
            "plugin.toml declares the `connector` world, but the component targets the `transform` world"
        );

        // The component's own refusals come through unchanged.
        assert_eq!(
            validate(&package, &Policy::default()),
            Err(Refusal::UnknownWorld { exports: vec![] })
        );
    }

    #[test]
    fn check_info_lists_every_difference() {
        let manifest = Manifest::parse(JIRA).unwrap();
        let ops = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = ops(&["get-issue", "create-issue", "create-project"]);
        assert_eq!(check_info(&manifest, "jira", "0.1.0", &all), Ok(()));

        let err = check_info(
            &manifest,
            "jira2",
            "0.2.0",
            &ops(&["get-issue", "delete-issue"]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin.toml does not match what the component's `info` reports: \
             name: plugin.toml says `jira`, the component says `jira2`; \
             version: plugin.toml says `0.1.0`, the component says `0.2.0`; \
             operations in plugin.toml that the component does not offer: `create-issue`, `create-project`; \
             operations the component offers that plugin.toml does not list: `delete-issue`"
        );
        assert!(matches!(
            check_info(&manifest, "jira", "not-semver", &all),
            Err(Refusal::ManifestMismatch { differences }) if differences.len() == 1
        ));
    }

    /// Bytes that `inspect` reads as a component exporting `exports` and
    /// importing `imports`. Only the outer names matter to `inspect`, which
    /// parses without validating, so the indices point at nothing.
    fn component(exports: &[&str], imports: &[&str]) -> Vec<u8> {
        use wasm_encoder::{
            Component, ComponentExportKind, ComponentExportSection, ComponentImportSection,
            ComponentTypeRef,
        };
        let mut component = Component::new();
        let mut import_section = ComponentImportSection::new();
        for name in imports {
            import_section.import(*name, ComponentTypeRef::Instance(0));
        }
        component.section(&import_section);
        let mut export_section = ComponentExportSection::new();
        for name in exports {
            export_section.export(*name, ComponentExportKind::Func, 0, None);
        }
        component.section(&export_section);
        component.finish()
    }

    #[test]
    fn validate_inspects_the_real_component() {
        let transform_manifest = "[plugin]\nname = \"map\"\nversion = \"1.0.0\"\nworld = \"transform\"\nwit = \"junction:plugin@0.1.0\"\n";
        let wasm = component(&["info", "apply"], &["junction:plugin/log@0.1.0"]);
        let v = validate(
            &Package::new(transform_manifest, wasm.clone()),
            &Policy::default(),
        )
        .unwrap();
        assert_eq!(v.inspection.world, World::Transform);
        assert_eq!(v.inspection.digest, Digest::of(&wasm));
        assert_eq!(
            v.inspection.imports,
            vec!["junction:plugin/log@0.1.0".to_string()]
        );

        let connector_exports = World::Connector.exports();
        let wasm = component(connector_exports, &[]);
        assert_eq!(
            validate(
                &Package::new(transform_manifest, wasm.clone()),
                &Policy::default()
            ),
            Err(Refusal::WorldMismatch {
                manifest: World::Transform,
                component: World::Connector
            })
        );
        assert!(validate(&Package::new(JIRA, wasm), &Policy::default()).is_ok());

        let wasm = component(&["info", "apply"], &["wasi:filesystem/types@0.2.6"]);
        let err =
            validate(&Package::new(transform_manifest, wasm), &Policy::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the component imports what the `transform` world does not offer: `wasi:filesystem/types@0.2.6`"
        );

        // Through the file format and the store's cap as well.
        let wasm = component(&["info", "apply"], &[]);
        let file = Package::new(transform_manifest, wasm).to_bytes();
        let package = Package::from_bytes(&file).unwrap();
        assert!(validate(&package, &Policy::default()).is_ok());
    }
}
