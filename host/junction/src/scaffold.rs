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
    let files = render(kind, name, &sdk);
    ensure_empty_dir(dir)?;
    let mut written = Vec::with_capacity(files.len());
    for (relative, contents) in files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_error("creating", parent))?;
        }
        // `create_new`: never overwrite, even if something appeared meanwhile.
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_error("creating", &path))?;
        file.write_all(contents.as_bytes())
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
        (".gitignore", "/target\n".into()),
    ]
}

const CARGO_TOML: &str = r#"[package]
name = "@NAME@"
description = "@DESCRIPTION@"
version = "0.1.0"
edition = "2024"
publish = false

# A plugin is a WebAssembly component: build it with
# `cargo build --release --target wasm32-wasip2`.
[lib]
crate-type = ["cdylib"]

[dependencies]
@SDK@
serde = { version = "1", features = ["derive"] }
schemars = "1"

# A workspace of its own, so the crate builds wherever it is put.
[workspace]

# Small components upload and compile faster; plugins are mostly I/O-bound.
[profile.release]
opt-level = "s"
debug = false
strip = "debuginfo"
"#;

const PLUGIN_TOML: &str = r#"# The package manifest: `junction plugin pack` puts it beside the component.
# The host checks that name, version, world and operations match what the
# component reports, so keep them in step with Cargo.toml and src/lib.rs.
[plugin]
name = "@NAME@"
version = "0.1.0"
world = "@WORLD@"
wit = "junction:plugin@0.1.0"
description = "@DESCRIPTION@"
operations = @OPERATIONS@
triggers = []

# What the plugin asks the host for. Outbound HTTP is denied except to these
# hosts (e.g. "api.example.com" or "*.example.com"); the host adds the
# credentials of the auth scheme itself, so the plugin never sees them.
[capabilities]
outbound_hosts = []
auth = "none"
kv = false
"#;

const CONNECTOR_LIB: &str = r##"//! @DESCRIPTION@ with two operations: `ping` and `echo`.
//!
//! Add an operation: write a function from a `Deserialize` input to a
//! `Serialize` output, list it in `operations()` and in `plugin.toml`.

use junction_sdk::{Connector, Context, Error, JsonSchema, Operation, Operations, Result};
use serde::{Deserialize, Serialize};

struct @TYPE@;

impl Connector for @TYPE@ {
    fn operations() -> Operations {
        Operations::new()
            .with(Operation::new("ping", "Answers pong", ping).idempotent())
            .with(Operation::new("echo", "Returns its message, repeated", echo).idempotent())
    }
}

junction_sdk::export_connector!(@TYPE@);

/// `ping` takes no input: `{}`.
#[derive(Deserialize, JsonSchema)]
struct PingInput {}

#[derive(Serialize, JsonSchema)]
struct Pong {
    pong: bool,
}

fn ping(_ctx: &Context, _input: PingInput) -> Result<Pong> {
    Ok(Pong { pong: true })
}

#[derive(Deserialize, JsonSchema)]
struct EchoInput {
    /// What to send back.
    message: String,
    /// How many times, 1 to 10; 1 when absent.
    #[serde(default)]
    times: Option<u32>,
}

#[derive(Serialize, JsonSchema)]
struct EchoOutput {
    message: String,
}

fn echo(_ctx: &Context, input: EchoInput) -> Result<EchoOutput> {
    let times = input.times.unwrap_or(1);
    if !(1..=10).contains(&times) {
        return Err(Error::InvalidInput(format!(
            "`times` must be 1 to 10, not {times}"
        )));
    }
    let message = vec![input.message.as_str(); times as usize].join(" ");
    Ok(EchoOutput { message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoke(operation: &str, input: &str) -> Result<String> {
        @TYPE@::operations().invoke(&Context::default(), operation, input)
    }

    #[test]
    fn ping_answers_pong() {
        assert_eq!(invoke("ping", "{}"), Ok(r#"{"pong":true}"#.to_string()));
    }

    #[test]
    fn echo_repeats_the_message() {
        assert_eq!(
            invoke("echo", r#"{"message":"hi"}"#),
            Ok(r#"{"message":"hi"}"#.to_string())
        );
        assert_eq!(
            invoke("echo", r#"{"message":"hi","times":3}"#),
            Ok(r#"{"message":"hi hi hi"}"#.to_string())
        );
    }

    #[test]
    fn bad_input_is_invalid_input() {
        assert!(matches!(
            invoke("echo", r#"{"message":"hi","times":0}"#),
            Err(Error::InvalidInput(m)) if m.contains("times")
        ));
        // A missing field is refused by the SDK before `echo` runs.
        assert!(matches!(
            invoke("echo", "{}"),
            Err(Error::InvalidInput(m)) if m.contains("message")
        ));
    }
}
"##;

const TRANSFORM_LIB: &str = r##"//! @DESCRIPTION@: maps a contact to a person.
//!
//! Change `Contact` and `Person` to the shapes you read and write; the host
//! shows their JSON Schemas to operators.

use junction_sdk::{JsonSchema, Result, Transform};
use serde::{Deserialize, Serialize};

/// What the transform reads.
#[derive(Deserialize, JsonSchema)]
struct Contact {
    first_name: String,
    last_name: String,
    #[serde(default)]
    email: Option<String>,
}

/// What the transform writes.
#[derive(Serialize, JsonSchema)]
struct Person {
    name: String,
    email: Option<String>,
}

struct @TYPE@;

impl Transform for @TYPE@ {
    type Input = Contact;
    type Output = Person;

    fn apply(contact: Contact) -> Result<Vec<Person>> {
        let name = format!("{} {}", contact.first_name.trim(), contact.last_name.trim());
        let name = name.trim();
        // No output: a contact without a name is not passed on.
        if name.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![Person {
            name: name.to_string(),
            email: contact.email.map(|e| e.trim().to_lowercase()),
        }])
    }
}

junction_sdk::export_transform!(@TYPE@);

#[cfg(test)]
mod tests {
    use super::*;
    use junction_sdk::{Error, apply_json};

    #[test]
    fn maps_a_contact_to_a_person() {
        assert_eq!(
            apply_json::<@TYPE@>(
                r#"{"first_name":"Ada","last_name":"Lovelace","email":" Ada@Example.COM "}"#
            ),
            Ok(vec![
                r#"{"name":"Ada Lovelace","email":"ada@example.com"}"#.to_string()
            ])
        );
    }

    #[test]
    fn a_contact_without_a_name_is_dropped() {
        assert_eq!(
            apply_json::<@TYPE@>(r#"{"first_name":" ","last_name":""}"#),
            Ok(vec![])
        );
    }

    #[test]
    fn input_of_another_shape_is_invalid_input() {
        assert!(matches!(
            apply_json::<@TYPE@>(r#"{"first_name":"Ada"}"#),
            Err(Error::InvalidInput(m)) if m.contains("last_name")
        ));
    }
}
"##;

const README: &str = r#"# @NAME@

@DESCRIPTION@ (world `@WORLD@`), a WebAssembly component built with
[junction-sdk](https://docs.rs/junction-sdk).

## Build

```sh
rustup target add wasm32-wasip2   # once
cargo build --release --target wasm32-wasip2
```

The component is `target/wasm32-wasip2/release/@CRATE@.wasm`.

## Test

```sh
cargo test
```

@TEST_NOTE@

## Package and load

`plugin.toml` is the package manifest: name, version, world, operations and
the capabilities the plugin asks for (outbound hosts, auth scheme, key-value
store). Keep it in step with `Cargo.toml` and `src/lib.rs`, then:

```sh
junction plugin pack     # writes @NAME@-0.1.0.jpkg
junction plugin push @NAME@-0.1.0.jpkg --activate
```
"#;

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
