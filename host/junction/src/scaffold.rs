//! `junction plugin new`: writes a plugin crate that builds for
//! `wasm32-wasip2` and passes its own test.
//!
//! ```no_run
//! use std::path::{Path, PathBuf};
//! use junction::scaffold::{Kind, SdkSource, new_plugin};
//!
//! let files = new_plugin(
//!     Kind::Connector,
//!     "acme-crm",
//!     Path::new("acme-crm"),
//!     SdkSource::Version("0.1".into()),
//! )?;
//! for file in files {
//!     println!("created {}", file.display());
//! }
//! # Ok::<(), junction::scaffold::ScaffoldError>(())
//! ```

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

mod script;
pub mod sdk;
mod templates;

pub use script::Lang;

use templates::{
    CARGO_TOML, CONNECTOR_CASES, CONNECTOR_LIB, PLUGIN_TOML, README, TRANSFORM_CASES, TRANSFORM_LIB,
};

/// Longest plugin name, in characters (the registry's limit).
pub const MAX_NAME_LEN: usize = 64;

/// Names a crate cannot have: Rust keywords (the library target would not
/// compile) and the sysroot crates (the plugin's own test would not link).
/// Compared after `-` is replaced by `_`, as Cargo does for the crate name.
const RESERVED: &[&str] = &[
    "abstract",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
    "alloc",
    "core",
    "proc_macro",
    "std",
    "test",
];

/// What kind of plugin to create; each is one `junction:plugin` world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Talks to one external system: typed operations over HTTP.
    Connector,
    /// Maps JSON to JSON, without network or storage.
    Transform,
}

impl Kind {
    /// The world's name, which is also the junction-sdk feature that selects it.
    pub fn world(self) -> &'static str {
        match self {
            Kind::Connector => "connector",
            Kind::Transform => "transform",
        }
    }
}

/// Where the new crate gets `junction-sdk` from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// The `sdk/` directory of a local Junction checkout (made absolute, so
    /// the crate can live anywhere).
    Path(PathBuf),
    /// A crates.io version requirement, e.g. `0.1`.
    Version(String),
}

/// Why no plugin crate was written. Nothing is written when one of these is
/// returned, except for [`ScaffoldError::Io`], which can leave a partial crate
/// in a directory that was empty.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name is not a plugin name that is also a crate name.
    #[error(
        "plugin name {0:?} is not valid: use 1 to {MAX_NAME_LEN} characters of a-z, 0-9, `-` and `_`, starting with a letter"
    )]
    BadName(String),
    /// The name is a Rust keyword or the name of a standard crate.
    #[error("plugin name {0:?} is reserved by Rust; choose another")]
    ReservedName(String),
    /// The target exists and is a file, or a directory with something in it.
    #[error("{} already exists and is not an empty directory; refusing to overwrite it", .0.display())]
    NotEmpty(PathBuf),
    /// [`SdkSource::Path`] is not a `junction-sdk` crate directory.
    #[error("{} is not a junction-sdk crate (no Cargo.toml there)", .0.display())]
    NoSdk(PathBuf),
    /// [`SdkSource::Path`] cannot be written into `Cargo.toml`.
    #[error("the SDK path {} is not valid UTF-8", .0.display())]
    NonUtf8Path(PathBuf),
    /// componentize-py cannot build the connector world.
    #[error(
        "a Python connector cannot be built yet: componentize-py 0.25.1 cannot link the connector \
         world (its export `read` collides with libc's `read`, and `--stub-wasi` collides with \
         the world's wasi:http import); write the connector in Rust or JavaScript \
         (`--lang js`), or a Python transform (`--kind transform`)"
    )]
    PythonConnector,
    /// Reading the target directory or writing a file failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done, e.g. `writing`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: io::Error,
    },
}

/// Writes a new `kind` plugin crate called `name` into `dir`, which must not
/// exist or be empty, and returns the files written.
///
/// The crate is a workspace of its own (it builds wherever it is put) with a
/// `cdylib` library, small release profile, `plugin.toml` package manifest,
/// README and `.gitignore`. A connector offers `ping` and `echo`, a transform
/// maps a contact to a person; each has unit tests run natively by `cargo test`.
/// Its crate name and plugin name are both `name`.
pub fn new_plugin(
    kind: Kind,
    name: &str,
    dir: &Path,
    sdk: SdkSource,
) -> Result<Vec<PathBuf>, ScaffoldError> {
    check_name(name)?;
    let sdk = sdk_dependency(&sdk, kind)?;
    let files = render(kind, name, &sdk)
        .into_iter()
        .map(|(path, text)| (path.to_string(), text.into_bytes()))
        .collect();
    write_new(dir, files)
}

/// Writes a new `kind` plugin called `name` in `lang` into `dir`, which
/// must not exist or be empty, and returns the files written: the app, the
/// SDK file of the language and the WIT (as this binary carries them), its
/// build (`package.json` or `build.sh`), `plugin.toml`, `tests/cases.toml`
/// and a README. A connector offers `ping` and `echo`, a transform maps a
/// contact to a person, as in Rust.
pub fn new_script_plugin(
    lang: Lang,
    kind: Kind,
    name: &str,
    dir: &Path,
) -> Result<Vec<PathBuf>, ScaffoldError> {
    check_name(name)?;
    let files = script::render(lang, kind, name)?;
    write_new(dir, files)
}

/// Writes `files` (path under `dir`, contents) into `dir`, which must not
/// exist or be empty; a `.sh` file is made executable.
fn write_new(dir: &Path, files: Vec<(String, Vec<u8>)>) -> Result<Vec<PathBuf>, ScaffoldError> {
    ensure_empty_dir(dir)?;
    let mut written = Vec::with_capacity(files.len());
    for (relative, contents) in files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_error("creating", parent))?;
        }
        let mut options = fs::OpenOptions::new();
        // `create_new`: never overwrite, even if something appeared meanwhile.
        options.write(true).create_new(true);
        #[cfg(unix)]
        if path.extension().is_some_and(|e| e == "sh") {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o755);
        }
        let mut file = options.open(&path).map_err(io_error("creating", &path))?;
        file.write_all(&contents)
            .map_err(io_error("writing", &path))?;
        written.push(path);
    }
    Ok(written)
}

fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let shaped = name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !shaped {
        return Err(ScaffoldError::BadName(name.into()));
    }
    if RESERVED.contains(&name.replace('-', "_").as_str()) {
        return Err(ScaffoldError::ReservedName(name.into()));
    }
    Ok(())
}

fn ensure_empty_dir(dir: &Path) -> Result<(), ScaffoldError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ScaffoldError::NotEmpty(dir.into()));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(io_error("creating", dir))
        }
        Err(_) if dir.exists() && !dir.is_dir() => Err(ScaffoldError::NotEmpty(dir.into())),
        Err(e) => Err(io_error("reading", dir)(e)),
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ScaffoldError {
    let path = path.to_path_buf();
    move |source| ScaffoldError::Io {
        action,
        path,
        source,
    }
}

/// The `junction-sdk = ...` line of the new `Cargo.toml`.
fn sdk_dependency(sdk: &SdkSource, kind: Kind) -> Result<String, ScaffoldError> {
    let source = match sdk {
        SdkSource::Path(path) => {
            let path = std::path::absolute(path).map_err(io_error("finding", path))?;
            if !path.join("Cargo.toml").is_file() {
                return Err(ScaffoldError::NoSdk(path));
            }
            let text = path
                .to_str()
                .ok_or_else(|| ScaffoldError::NonUtf8Path(path.clone()))?;
            format!("path = {}", toml_string(text))
        }
        SdkSource::Version(requirement) => format!("version = {}", toml_string(requirement)),
    };
    Ok(format!(
        "junction-sdk = {{ {source}, features = [\"{}\"] }}",
        kind.world()
    ))
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `acme-crm` -> `AcmeCrm`; the name starts with a letter, so this is an identifier.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

fn render(kind: Kind, name: &str, sdk: &str) -> Vec<(&'static str, String)> {
    let (description, lib, operations, test_note) = match kind {
        Kind::Connector => (
            "A Junction connector",
            CONNECTOR_LIB,
            r#"["ping", "echo"]"#,
            "`cargo test` runs the operations natively through `Operations::invoke`.",
        ),
        Kind::Transform => (
            "A Junction transform",
            TRANSFORM_LIB,
            "[]",
            "`cargo test` runs the transform natively through `junction_sdk::apply_json`.",
        ),
    };
    // Suffixed with the kind so it never collides with an SDK item
    // (`context` -> `ContextConnector`, not `Context`).
    let type_name = type_name(name)
        + match kind {
            Kind::Connector => "Connector",
            Kind::Transform => "Transform",
        };
    let fill = |template: &str| {
        template
            .replace("@NAME@", name)
            .replace("@CRATE@", &name.replace('-', "_"))
            .replace("@TYPE@", &type_name)
            .replace("@WORLD@", kind.world())
            .replace("@DESCRIPTION@", description)
            .replace("@OPERATIONS@", operations)
            .replace("@SDK@", sdk)
            .replace("@TEST_NOTE@", test_note)
    };
    vec![
        ("Cargo.toml", fill(CARGO_TOML)),
        ("plugin.toml", fill(PLUGIN_TOML)),
        ("src/lib.rs", fill(lib)),
        ("README.md", fill(README)),
        (
            "tests/cases.toml",
            match kind {
                Kind::Connector => CONNECTOR_CASES,
                Kind::Transform => TRANSFORM_CASES,
            }
            .to_string(),
        ),
        (".gitignore", "/target\n".into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_camel_case() {
        assert_eq!(type_name("jira"), "Jira");
        assert_eq!(type_name("acme-crm_v2"), "AcmeCrmV2");
        assert_eq!(type_name("a--b"), "AB");
    }

    #[test]
    fn toml_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(toml_string(r#"C:\a "b""#), r#""C:\\a \"b\"""#);
        assert_eq!(toml_string("a\nb"), r#""a\u000Ab""#);
    }

    #[test]
    fn names_must_be_crate_and_plugin_names() {
        for good in ["jira", "acme-crm", "x_1", &"a".repeat(MAX_NAME_LEN)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1password",
            "-x",
            "_x",
            "Jira",
            "a.b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(
                matches!(check_name(bad), Err(ScaffoldError::BadName(_))),
                "{bad}"
            );
        }
        for reserved in ["fn", "test", "proc-macro", "self"] {
            assert!(
                matches!(check_name(reserved), Err(ScaffoldError::ReservedName(_))),
                "{reserved}"
            );
        }
    }
}
