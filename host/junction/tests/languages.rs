//! Plugins in other languages than Rust, built by `.ci/run` with their own
//! toolchains: the JavaScript example connector (`examples/js-echo`, built
//! with ComponentizeJS) passes the cases of the Rust connector `junction
//! plugin new` writes, through `junction plugin test` (the host's upload
//! checks, limits and engine).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_javascript_connector_passes_its_cases_on_the_host() {
    let dir = repo().join("examples/js-echo");
    let wasm = dir.join("target/js-echo.wasm");
    if !wasm.is_file() {
        eprintln!(
            "SKIPPED: {} is not built; run `npm ci && npm run build` in examples/js-echo \
             (.ci/run does) to test the JavaScript connector",
            wasm.display()
        );
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_junction"))
        .current_dir(&dir)
        .args(["plugin", "test", "--wasm", "target/js-echo.wasm"])
        .output()
        .expect("running junction");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("ok    echo repeats the message"), "{said}");
    assert!(said.contains("4 passed, 0 failed"), "{said}");
}
