//! Builds the plugins Junction ships (the `plugins/` workspace) so that
//! `junction demo` and the tests can load them, and embeds the SDK's sources
//! (Rust, JavaScript and Python) and the WIT, so that `junction plugin new`
//! works without a checkout.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use junction_build_support::{Guest, build};

fn main() {
    embed_sdk();
    build(
        "../../plugins",
        &[
            Guest {
                package: "jira",
                constant: "JIRA_CONNECTOR",
            },
            Guest {
                package: "hubspot-deal-to-project",
                constant: "HUBSPOT_DEAL_TO_PROJECT",
            },
            Guest {
                package: "salesforce",
                constant: "SALESFORCE_CONNECTOR",
            },
            Guest {
                package: "hubspot",
                constant: "HUBSPOT_CONNECTOR",
            },
            Guest {
                package: "netsuite",
                constant: "NETSUITE_CONNECTOR",
            },
            Guest {
                package: "psa",
                constant: "PSA_CONNECTOR",
            },
            Guest {
                package: "proposal",
                constant: "PROPOSAL_CONNECTOR",
            },
            Guest {
                package: "contract",
                constant: "CONTRACT_CONNECTOR",
            },
            Guest {
                package: "approved-time-to-invoice",
                constant: "APPROVED_TIME_TO_INVOICE",
            },
            Guest {
                package: "salesforce-opportunity-to-project",
                constant: "SALESFORCE_OPPORTUNITY_TO_PROJECT",
            },
            Guest {
                package: "canonical-to-netsuite",
                constant: "CANONICAL_TO_NETSUITE",
            },
            Guest {
                package: "project-to-jira",
                constant: "PROJECT_TO_JIRA",
            },
            Guest {
                package: "resource-optimizer",
                constant: "RESOURCE_OPTIMIZER",
            },
        ],
    );
}

/// Writes `$OUT_DIR/sdk_files.rs`: `SDK_FILES`, every file of `sdk/src` and
/// `wit/` by its path under the repository, and `SDK_MANIFEST`, the SDK's
/// `Cargo.toml` with what it inherits from the workspace written out, so
/// that it builds on its own.
fn embed_sdk() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let repo = repo.canonicalize().unwrap_or(repo);
    let mut files = Vec::new();
    for dir in ["sdk/src", "sdk/js", "sdk/python", "wit"] {
        println!("cargo:rerun-if-changed={}", repo.join(dir).display());
        collect(&repo, &repo.join(dir), &mut files);
    }
    files.sort();
    let mut out =
        String::from("/// The SDK's sources and the WIT, by path under the repository.\n");
    out.push_str("pub const SDK_FILES: &[(&str, &[u8])] = &[\n");
    for (relative, absolute) in &files {
        let _ = writeln!(out, "    ({relative:?}, include_bytes!({absolute:?})),");
    }
    out.push_str("];\n");
    let manifest = standalone_manifest(&repo);
    let _ = writeln!(
        out,
        "/// The SDK's `Cargo.toml`, standing alone.\npub const SDK_MANIFEST: &str = {manifest:?};"
    );
    println!(
        "cargo:rerun-if-changed={}",
        repo.join("sdk/Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        repo.join("Cargo.toml").display()
    );
    let target = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("sdk_files.rs");
    if let Err(e) = std::fs::write(&target, out) {
        panic!("writing {}: {e}", target.display());
    }
}

fn collect(repo: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            // Python's bytecode cache is not a source.
            if path.file_name().is_some_and(|n| n == "__pycache__") {
                continue;
            }
            collect(repo, &path, files);
        } else if let Ok(relative) = path.strip_prefix(repo) {
            let relative = relative.to_string_lossy().replace('\\', "/");
            files.push((relative, path.to_string_lossy().into_owned()));
        }
    }
}

/// `sdk/Cargo.toml` with each `<field>.workspace = true` of `[package]`
/// replaced by the workspace's value and the workspace's `[lints]` left out.
fn standalone_manifest(repo: &Path) -> String {
    let read = |p: &str| {
        std::fs::read_to_string(repo.join(p)).unwrap_or_else(|e| panic!("reading {p}: {e}"))
    };
    let root = read("Cargo.toml");
    let workspace_value = |field: &str| -> String {
        let mut in_package = false;
        for line in root.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_package = line == "[workspace.package]";
                continue;
            }
            if in_package
                && let Some((key, value)) = line.split_once('=')
                && key.trim() == field
            {
                return value.trim().to_string();
            }
        }
        panic!("the workspace's [workspace.package] has no `{field}`");
    };
    let mut out = String::new();
    let mut skipping = false;
    for line in read("sdk/Cargo.toml").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            skipping = trimmed == "[lints]";
        }
        if skipping {
            continue;
        }
        match trimmed.strip_suffix(".workspace = true") {
            Some(field) if !field.contains(' ') => {
                let _ = writeln!(out, "{field} = {}", workspace_value(field));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}
