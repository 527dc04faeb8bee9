//! The files `junction plugin new` writes; `render` fills in their
//! `@NAME@`-style placeholders.

pub(super) const CARGO_TOML: &str = r#"[package]
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

pub(super) const PLUGIN_TOML: &str = r#"# The package manifest: `junction plugin pack` puts it beside the component.
# The host checks that name, version, world and operations match what the
# component reports, so keep them in step with src/lib.rs. The version is
# Cargo.toml's: pack writes it in here, and the SDK reports it in `info`
# (a `version` given here must be the same).
[plugin]
name = "@NAME@"
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

pub(super) const CONNECTOR_LIB: &str = r##"//! @DESCRIPTION@ with two operations: `ping` and `echo`.
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

pub(super) const TRANSFORM_LIB: &str = r##"//! @DESCRIPTION@: maps a contact to a person.
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

pub(super) const CONNECTOR_CASES: &str = r#"# `junction plugin test`: each case runs on the host's engine, with the
# host's upload checks, limits and capability filtering. Expected JSON is a
# subset of the answer. A case that reaches a system names a cassette
# (tests/cassettes/NAME.toml: the system's recorded answers), replayed at
# `{server}`, which [connection] settings may use, e.g.
#   [connection]
#   config = { base_url = "{server}" }
#   auth = { type = "bearer", token = "test" }

[[case]]
name = "ping answers pong"
operation = "ping"
output = { pong = true }

[[case]]
name = "echo repeats the message"
operation = "echo"
input = { message = "hi", times = 3 }
output = { message = "hi hi hi" }

[[case]]
name = "times 0 is invalid input"
operation = "echo"
input = { message = "hi", times = 0 }
error = "invalid_input"
error_contains = "times"
"#;

pub(super) const TRANSFORM_CASES: &str = r#"# `junction plugin test`: each case runs on the host's engine, with the
# host's upload checks and limits. Expected JSON is a subset of each output.

[[case]]
name = "a contact becomes a person"
apply = { first_name = "Ada", last_name = "Lovelace", email = " Ada@Example.COM " }
outputs = [{ name = "Ada Lovelace", email = "ada@example.com" }]

[[case]]
name = "a contact without a name is dropped"
apply = { first_name = " ", last_name = "" }
outputs = []

[[case]]
name = "another shape is invalid input"
apply = { first_name = "Ada" }
error = "invalid_input"
error_contains = "last_name"
"#;

pub(super) const README: &str = r#"# @NAME@

@DESCRIPTION@ (world `@WORLD@`), a WebAssembly component built with
junction-sdk. Its documentation, for the version this crate uses:

```sh
cargo doc -p junction-sdk --open
```

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

`tests/cases.toml` holds cases for the host itself: `junction plugin test`
builds the component and runs them on the host's engine, with the same
upload checks, limits and capability filtering as a running host, replaying
the systems' answers from `tests/cassettes`.

## Package and load

`plugin.toml` is the package manifest: name, version, world, operations and
the capabilities the plugin asks for (outbound hosts, auth scheme, key-value
store). Keep it in step with `Cargo.toml` and `src/lib.rs`, then:

```sh
junction plugin pack     # writes @NAME@-0.1.0.jpkg
junction plugin push @NAME@-0.1.0.jpkg --activate
```
"#;
