#![allow(clippy::expect_used)]

//! Plugins in other languages than Rust, built by `.ci/run` with their own
//! toolchains: the JavaScript example connector and transform
//! (`examples/js-echo`, `examples/js-person`, built with ComponentizeJS) and
//! the Python example transform (`examples/py-person`, built with
//! componentize-py) pass the cases of the
//! Rust connector and transform `junction plugin new` writes, through
//! `junction plugin test` (the host's upload checks, limits and engine).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `junction plugin test` of the example in `examples/NAME` with its built
/// component `target/WASM`; what it printed, or `None` (said on stderr) when
/// the component is not built.
fn plugin_test(name: &str, wasm: &str, build: &str) -> Option<String> {
    let dir = repo().join("examples").join(name);
    if !dir.join("target").join(wasm).is_file() {
        eprintln!(
            "SKIPPED: examples/{name}/target/{wasm} is not built; run `{build}` in examples/{name} \
             (.ci/run does) to test it"
        );
        return None;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_junction"))
        .current_dir(&dir)
        .args(["plugin", "test", "--wasm"])
        .arg(Path::new("target").join(wasm))
        .output()
        .expect("running junction");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(said)
}

#[test]
fn the_javascript_connector_passes_its_cases_on_the_host() {
    let Some(said) = plugin_test("js-echo", "js-echo.wasm", "npm ci && npm run build") else {
        return;
    };
    assert!(said.contains("ok    echo repeats the message"), "{said}");
    assert!(said.contains("4 passed, 0 failed"), "{said}");
}

#[test]
fn the_python_transform_passes_its_cases_on_the_host() {
    let Some(said) = plugin_test("py-person", "py-person.wasm", "./build.sh") else {
        return;
    };
    assert!(said.contains("ok    a contact becomes a person"), "{said}");
    assert!(said.contains("3 passed, 0 failed"), "{said}");
}

#[test]
fn the_javascript_transform_passes_its_cases_on_the_host() {
    let Some(said) = plugin_test("js-person", "js-person.wasm", "npm ci && npm run build") else {
        return;
    };
    assert!(said.contains("ok    a contact becomes a person"), "{said}");
    assert!(said.contains("3 passed, 0 failed"), "{said}");
}
