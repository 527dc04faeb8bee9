//! The plugin crate on disk: building it for wasm32-wasip2, what cargo
//! says of it, its manifest with the crate's one version, and its sources.
//! A plugin in JavaScript (`package.json`) or Python (`build.sh`) is built
//! by its own script into `target/NAME.wasm`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use junction_registry::Manifest;
use serde_json::Value;

fn cargo_command(dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(dir);
    cmd
}

/// Whether the toolchain `dir` builds with has the wasm32-wasip2 standard
/// library (the sysroot's `lib/rustlib/wasm32-wasip2`).
fn wasm_target_installed(dir: &Path) -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc)
        .current_dir(dir)
        .args(["--print", "sysroot"])
        .output()
    else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib/wasm32-wasip2")
        .is_dir()
}

/// How the plugin in a directory is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Project {
    /// A Rust crate (`Cargo.toml`), built by cargo.
    Crate,
    /// JavaScript (`package.json`), built by `npm run build`.
    Npm,
    /// Python (`build.sh`), built by its script.
    Script,
}

impl Project {
    pub(super) fn of(dir: &Path) -> Self {
        if dir.join("Cargo.toml").is_file() {
            Project::Crate
        } else if dir.join("package.json").is_file() {
            Project::Npm
        } else if dir.join("build.sh").is_file() {
            Project::Script
        } else {
            // Its errors name what is missing.
            Project::Crate
        }
    }

    /// The file that says how it is built, which a build always reads.
    fn build_file(self) -> &'static str {
        match self {
            Project::Crate => "Cargo.toml",
            Project::Npm => "package.json",
            Project::Script => "build.sh",
        }
    }

    /// What builds it, as the author would type it.
    fn build_command(self) -> &'static str {
        match self {
            Project::Crate => "junction plugin build",
            Project::Npm => "npm run build",
            Project::Script => "./build.sh",
        }
    }
}

/// Runs the build script of a JavaScript or Python plugin in `dir`.
fn build_script(dir: &Path, project: Project) -> anyhow::Result<()> {
    let mut command = match project {
        Project::Npm => {
            if !dir.join("node_modules").is_dir() {
                let status = Command::new("npm")
                    .current_dir(dir)
                    .args(["install", "--no-audit", "--no-fund"])
                    .status()
                    .context("running npm: install Node.js 20 or later and npm")?;
                if !status.success() {
                    bail!("npm install failed ({status}); npm's errors are above");
                }
            }
            let mut npm = Command::new("npm");
            npm.args(["run", "build"]);
            npm
        }
        _ => {
            let mut bash = Command::new("bash");
            bash.arg(project.build_file());
            bash
        }
    };
    let what = project.build_command();
    let status = command
        .current_dir(dir)
        .status()
        .with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status}); its errors are above");
    }
    Ok(())
}

pub(super) fn build(dir: &Path, version: Option<&str>) -> anyhow::Result<()> {
    let project = Project::of(dir);
    if project != Project::Crate {
        build_script(dir, project)?;
        println!("built {}", built_component(dir)?.display());
        return Ok(());
    }
    let mut cargo = cargo_command(dir);
    if let Some(version) = version {
        // The SDK's export macros report it as the plugin's version.
        cargo.env("JUNCTION_PLUGIN_VERSION", version);
    }
    let status = cargo
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .status()
        .context("running cargo")?;
    if !status.success() {
        if !wasm_target_installed(dir) {
            bail!(
                "cargo build failed ({status}): the wasm32-wasip2 target is not installed; `rustup target add wasm32-wasip2`"
            );
        }
        bail!("cargo build failed ({status}); the compiler's errors are above");
    }
    let wasm = built_component(dir)?;
    println!("built {}", wasm.display());
    Ok(())
}

/// What cargo says of the crate in `dir`: its package, and the target
/// directory it builds into.
fn crate_metadata(dir: &Path) -> anyhow::Result<(Value, String)> {
    let output = cargo_command(dir)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let mut metadata: Value = serde_json::from_slice(&output.stdout)?;
    let target_dir = metadata["target_directory"]
        .as_str()
        .context("cargo metadata has no target directory")?
        .to_string();
    let manifest = std::fs::canonicalize(dir.join("Cargo.toml"))?;
    let package = metadata["packages"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .find(|p| p["manifest_path"].as_str().map(PathBuf::from) == Some(manifest.clone()))
        .context("no package in this directory")?
        .take();
    Ok((package, target_dir))
}

/// The crate's `plugin.toml` and its manifest, with the crate's one version
/// number: Cargo.toml's, which the SDK reports in the component's `info`,
/// written in when `plugin.toml` gives none; a different one is refused.
/// A plugin built without cargo (JavaScript, Python) has no Cargo.toml:
/// its `plugin.toml` gives the version.
pub(super) fn crate_manifest(dir: &Path) -> anyhow::Result<(String, Manifest)> {
    let path = dir.join("plugin.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let text = if dir.join("Cargo.toml").is_file() {
        let (package, _) = crate_metadata(dir)?;
        let version = package["version"]
            .as_str()
            .context("cargo metadata has no package version")?;
        with_crate_version(&text, version).with_context(|| path.display().to_string())?
    } else {
        text
    };
    let manifest =
        Manifest::parse(&text).with_context(|| format!("{} is invalid", path.display()))?;
    Ok((text, manifest))
}

/// `plugin.toml` with `version` under `[plugin]`: inserted when it has
/// none, refused when it is not `version`.
fn with_crate_version(text: &str, version: &str) -> anyhow::Result<String> {
    let table: toml::Table = toml::from_str(text).context("not TOML")?;
    match table.get("plugin").and_then(|p| p.get("version")) {
        Some(toml::Value::String(given)) if given == version => return Ok(text.to_string()),
        Some(given) => bail!(
            "`plugin.version` is {given} but Cargo.toml's version is \"{version}\": remove \
             `version` from plugin.toml (it is taken from Cargo.toml) or make the two agree"
        ),
        None => {}
    }
    let mut out = String::with_capacity(text.len() + 32);
    let mut inserted = false;
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if !inserted && line.trim() == "[plugin]" {
            out.push_str(&format!("version = \"{version}\"\n"));
            inserted = true;
        }
    }
    if !inserted {
        bail!("there is no `[plugin]` table");
    }
    Ok(out)
}

/// The component cargo built for the crate in `dir`, or the build script
/// of a JavaScript or Python plugin (`target/NAME.wasm`).
pub(super) fn built_component(dir: &Path) -> anyhow::Result<PathBuf> {
    let project = Project::of(dir);
    if project != Project::Crate {
        let (_, manifest) = crate_manifest(dir)?;
        let path = dir
            .join("target")
            .join(format!("{}.wasm", manifest.plugin.name));
        if !path.is_file() {
            bail!(
                "{} does not exist; build it first (`{}`, or `junction plugin build`)",
                path.display(),
                project.build_command()
            );
        }
        return Ok(path);
    }
    let (package, target_dir) = crate_metadata(dir)?;
    let lib = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
        })
        .context("the crate has no cdylib target: add [lib] crate-type = [\"cdylib\"]")?;
    let name = lib["name"].as_str().unwrap_or_default().replace('-', "_");
    let path = Path::new(&target_dir)
        .join("wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    if !path.is_file() {
        bail!(
            "{} does not exist; run `junction plugin build` first",
            path.display()
        );
    }
    Ok(path)
}

/// Refuses a component older than a source of the crate in `dir`: it
/// would pack what the sources no longer say.
pub(super) fn refuse_stale(dir: &Path, wasm: &Path) -> anyhow::Result<()> {
    let built = std::fs::metadata(wasm)?.modified()?;
    // `plugin.toml` is not an input of the build: it is checked against the component below.
    for (path, meta) in source_files(dir, &[Project::of(dir).build_file()])? {
        if meta.modified()? > built {
            bail!(
                "{} is older than {}: run `junction plugin build` first",
                wasm.display(),
                path.display()
            );
        }
    }
    Ok(())
}

/// The files of the plugin crate in `dir` that its build or package reads:
/// everything under `src/`, each of `top` (which must exist) and, for a
/// JavaScript or Python plugin, its own `.js` and `.py` files beside them,
/// with their metadata, sorted by path.
pub(super) fn source_files(
    dir: &Path,
    top: &[&str],
) -> anyhow::Result<Vec<(PathBuf, std::fs::Metadata)>> {
    let mut files = Vec::new();
    for file in top {
        let path = dir.join(file);
        let meta = std::fs::metadata(&path).with_context(|| {
            format!("{} is not a plugin crate: it has no {file}", dir.display())
        })?;
        files.push((path, meta));
    }
    if Project::of(dir) != Project::Crate {
        for entry in std::fs::read_dir(dir)?.flatten() {
            let path = entry.path();
            if path
                .extension()
                .is_some_and(|e| e == "js" || e == "mjs" || e == "py")
            {
                files.push((path, entry.metadata()?));
            }
        }
    }
    let mut pending = vec![dir.join("src")];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                files.push((entry.path(), meta));
            }
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crate_version_is_written_in_or_must_agree() {
        let without = "# the manifest\n[plugin]\nname = \"acme\"\n\n[capabilities]\n";
        let with = with_crate_version(without, "0.4.1").unwrap();
        assert_eq!(
            with,
            "# the manifest\n[plugin]\nversion = \"0.4.1\"\nname = \"acme\"\n\n[capabilities]\n"
        );
        assert_eq!(with_crate_version(&with, "0.4.1").unwrap(), with);
        let e = with_crate_version(&with, "0.5.0").unwrap_err().to_string();
        assert!(
            e.contains("\"0.4.1\"") && e.contains("\"0.5.0\"") && e.contains("remove"),
            "{e}"
        );
        assert!(with_crate_version("[capabilities]\n", "0.1.0").is_err());
    }
}
