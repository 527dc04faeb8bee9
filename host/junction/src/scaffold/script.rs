//! The plugins `junction plugin new --lang js|python` writes: the app, the
//! SDK file of its language and the WIT (both carried by this binary), the
//! build (ComponentizeJS from npm, componentize-py from PyPI, pinned), the
//! package manifest and the host's test cases.

use super::sdk::SDK_FILES;
use super::templates::{CONNECTOR_CASES, TRANSFORM_CASES};
use super::{Kind, ScaffoldError};

/// A language other than Rust that a plugin can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// JavaScript, built by ComponentizeJS.
    Js,
    /// Python, built by componentize-py.
    Python,
}

/// ComponentizeJS and the shim it needs (not installed as an optional peer).
const COMPONENTIZE_JS: &str = "0.23.0";
const PREVIEW2_SHIM: &str = "0.25.0";
/// componentize-py from PyPI.
const COMPONENTIZE_PY: &str = "0.25.1";

const PACKAGE_JSON: &str = r#"{
  "name": "@NAME@",
  "version": "0.1.0",
  "private": true,
  "description": "@DESCRIPTION@",
  "type": "module",
  "scripts": {
    "build": "rm -rf target && mkdir -p target && componentize-js app.js --wit wit --world-name @WORLD@ --disable stdio random clocks @NO_HTTP@fetch-event -o target/@NAME@.wasm"
  },
  "devDependencies": {
    "@bytecodealliance/componentize-js": "@COMPONENTIZE_JS@",
    "@bytecodealliance/preview2-shim": "@PREVIEW2_SHIM@"
  }
}
"#;

const JS_CONNECTOR: &str = r#"// @DESCRIPTION@ with two operations: `ping` and `echo`. Built into a
// WebAssembly component of the `connector` world by ComponentizeJS
// (`npm install && npm run build`); junction.js is the SDK. For outbound
// HTTP, `import { request } from "./junction-http.js"`: the host adds the
// connection's credentials and allows only the hosts in plugin.toml.

import { connector, InvalidInput } from "./junction.js";

export const { info, check, invoke, read, handleWebhook } = connector({
  // As in plugin.toml: the host checks that they agree.
  name: "@NAME@",
  version: "0.1.0",
  description: "@DESCRIPTION@",
  operations: {
    ping: {
      description: "Answers pong",
      input: { type: "object", properties: {}, additionalProperties: false },
      output: { type: "object" },
      idempotent: true,
      run: () => ({ pong: true }),
    },
    echo: {
      description: "Returns its message, repeated",
      // The host validates every input against this schema before the call.
      input: {
        type: "object",
        properties: { message: { type: "string" }, times: { type: "integer", minimum: 1, maximum: 10 } },
        required: ["message"],
        additionalProperties: false,
      },
      output: { type: "object" },
      idempotent: true,
      run: ({ message, times = 1 }, _ctx) => {
        if (!Number.isInteger(times) || times < 1 || times > 10) {
          throw new InvalidInput(`\`times\` must be 1 to 10, not ${times}`);
        }
        return { message: Array(times).fill(message).join(" ") };
      },
    },
  },
});
"#;

const JS_TRANSFORM: &str = r#"// @DESCRIPTION@: maps a contact to a person. Built into a WebAssembly
// component of the `transform` world by ComponentizeJS (`npm install && npm
// run build`); junction.js is the SDK.

import { InvalidInput, transform } from "./junction.js";

export const { info, apply } = transform({
  // As in plugin.toml: the host checks that they agree.
  name: "@NAME@",
  version: "0.1.0",
  description: "@DESCRIPTION@",
  // The records to pass on: an array, one object, or [] to drop the input.
  apply: (contact) => {
    for (const field of ["first_name", "last_name"]) {
      if (typeof contact?.[field] !== "string") {
        throw new InvalidInput(`missing field \`${field}\``);
      }
    }
    const name = `${contact.first_name.trim()} ${contact.last_name.trim()}`.trim();
    if (name === "") {
      return [];
    }
    const email = typeof contact.email === "string" ? contact.email.trim().toLowerCase() : null;
    return { name, email };
  },
});
"#;

const PY_TRANSFORM: &str = r#""""@DESCRIPTION@: maps a contact to a person. Built into a WebAssembly
component of the `transform` world by componentize-py (`./build.sh`);
junction_sdk.py is the SDK."""

from junction_sdk import InvalidInput, Transform


class WitWorld(Transform):
    # As in plugin.toml: the host checks that they agree.
    name = "@NAME@"
    version = "0.1.0"
    description = "@DESCRIPTION@"

    def map(self, contact):
        """The records to pass on: a list, one dict, or None to drop the input."""
        if not isinstance(contact, dict):
            raise InvalidInput("the input is not an object")
        for field in ("first_name", "last_name"):
            if not isinstance(contact.get(field), str):
                raise InvalidInput(f"missing field `{field}`")
        name = f"{contact['first_name'].strip()} {contact['last_name'].strip()}".strip()
        if not name:
            return None
        email = contact.get("email")
        email = email.strip().lower() if isinstance(email, str) else None
        return {"name": name, "email": email}
"#;

const BUILD_SH: &str = r#"#!/usr/bin/env bash
# Builds target/@NAME@.wasm with componentize-py (pinned in requirements.txt,
# installed from PyPI into a virtualenv under target/ on the first build; set
# COMPONENTIZE_PY to use another). `--stub-wasi` replaces the WASI imports
# CPython links (filesystem, sockets) with trapping stubs: the standard
# library is in the component's memory image.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p target
cpy="${COMPONENTIZE_PY:-target/venv/bin/componentize-py}"
if [ ! -x "$cpy" ]; then
  python3 -m venv target/venv && target/venv/bin/pip install -q -r requirements.txt
fi
"$cpy" -d wit -w @WORLD@ componentize --stub-wasi app -o target/@NAME@.wasm
"#;

const PLUGIN_TOML: &str = r#"# The package manifest: `junction plugin pack` puts it beside the component.
# The host checks that name, version, world and operations match what the
# component reports, so keep them in step with @APP@.
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

const README: &str = r#"# @NAME@

@DESCRIPTION@ (world `@WORLD@`), a WebAssembly component written in
@LANGUAGE@. `@APP@` is the plugin; `@SDK_FILE@` is the Junction SDK for
@LANGUAGE@ (its comments are its documentation) and `wit/` the contract, both
as carried by the `junction` that wrote this directory.

## Build

```sh
@BUILD@
```

The component is `target/@NAME@.wasm`. `junction plugin build` runs the same.

## Test

`tests/cases.toml` holds cases for the host itself: `junction plugin test`
builds the component and runs them on the host's engine, with the same
upload checks, limits and capability filtering as a running host, replaying
the systems' answers from `tests/cassettes`.

## Package and load

`plugin.toml` is the package manifest: name, version, world, operations and
the capabilities the plugin asks for (outbound hosts, auth scheme, key-value
store). Keep it in step with `@APP@`, then:

```sh
junction plugin pack     # writes @NAME@-0.1.0.jpkg
junction plugin push @NAME@-0.1.0.jpkg --activate
```
"#;

/// The files of a new `lang` plugin, by path under its directory.
pub(super) fn render(
    lang: Lang,
    kind: Kind,
    name: &str,
) -> Result<Vec<(String, Vec<u8>)>, ScaffoldError> {
    let description = match kind {
        Kind::Connector => "A Junction connector",
        Kind::Transform => "A Junction transform",
    };
    let operations = match kind {
        Kind::Connector => r#"["ping", "echo"]"#,
        Kind::Transform => "[]",
    };
    let fill = |template: &str| {
        template
            .replace("@NAME@", name)
            .replace("@WORLD@", kind.world())
            .replace("@DESCRIPTION@", description)
            .replace("@OPERATIONS@", operations)
            .replace("@COMPONENTIZE_JS@", COMPONENTIZE_JS)
            .replace("@PREVIEW2_SHIM@", PREVIEW2_SHIM)
            // A transform has no network: not even the runtime's own fetch.
            .replace(
                "@NO_HTTP@",
                if kind == Kind::Transform { "http " } else { "" },
            )
    };
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let (app, sdk_file, language, build) = match lang {
        Lang::Js => (
            "app.js",
            "junction.js",
            "JavaScript",
            "npm install && npm run build",
        ),
        Lang::Python => ("app.py", "junction_sdk.py", "Python", "./build.sh"),
    };
    let mut text = |path: &str, contents: String| files.push((path.into(), contents.into_bytes()));
    match (lang, kind) {
        (Lang::Js, Kind::Connector) => text(app, fill(JS_CONNECTOR)),
        (Lang::Js, Kind::Transform) => text(app, fill(JS_TRANSFORM)),
        (Lang::Python, Kind::Transform) => text(app, fill(PY_TRANSFORM)),
        (Lang::Python, Kind::Connector) => return Err(ScaffoldError::PythonConnector),
    }
    match lang {
        Lang::Js => {
            text("package.json", fill(PACKAGE_JSON));
            text(".gitignore", "/target\n/node_modules\n".into());
        }
        Lang::Python => {
            text("build.sh", fill(BUILD_SH));
            text(
                "requirements.txt",
                format!("componentize-py=={COMPONENTIZE_PY}\n"),
            );
            text(".gitignore", "/target\n__pycache__/\n".into());
        }
    }
    let described = |template: &str| {
        fill(template)
            .replace("@APP@", app)
            .replace("@SDK_FILE@", sdk_file)
            .replace("@LANGUAGE@", language)
            .replace("@BUILD@", build)
    };
    text("plugin.toml", described(PLUGIN_TOML));
    text("README.md", described(README));
    let cases = match kind {
        Kind::Connector => CONNECTOR_CASES,
        Kind::Transform => TRANSFORM_CASES,
    };
    text("tests/cases.toml", cases.to_string());
    // The SDK of the language and the WIT, as this binary carries them.
    let sdk_dir = match lang {
        Lang::Js => "sdk/js/",
        Lang::Python => "sdk/python/",
    };
    for (path, contents) in SDK_FILES {
        let wanted = match path.strip_prefix(sdk_dir) {
            // A transform cannot import wasi:http, so it gets no HTTP helper.
            Some(file) => (kind == Kind::Connector || file != "junction-http.js").then_some(file),
            None => path.starts_with("wit/").then_some(*path),
        };
        if let Some(relative) = wanted {
            files.push((relative.into(), contents.to_vec()));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}
