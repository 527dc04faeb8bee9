#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed unwrap is a failed test

//! Plugins in other languages than Rust, built by `.ci/run` with their own
//! toolchains: the JavaScript example connector and transform
//! (`examples/js-echo`, `examples/js-person`, built with ComponentizeJS) and
//! the Python example transform (`examples/py-person`, built with
//! componentize-py) pass the cases of the
//! Rust connector and transform `junction plugin new` writes, through
//! `junction plugin test` (the host's upload checks, limits and engine);
//! packed, they are pushed to a running `junction serve` and called over its
//! API. `junction plugin new --lang js|python` writes plugins that build,
//! pass their cases and pack.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

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
    // The SDK's HTTP helper against the cassettes: a body, 404, 429, paging.
    assert!(said.contains("ok    a thing is read over HTTP"), "{said}");
    assert!(said.contains("ok    a 429 is rate_limited"), "{said}");
    assert!(said.contains("8 passed, 0 failed"), "{said}");
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

const TOKEN: &str = "languages-admin-token-0123456789";

mod support;

fn junction(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_junction"));
    cmd.current_dir(dir).args(args);
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().expect("running junction")
}

fn ok(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = junction(dir, args, env);
    assert!(
        out.status.success(),
        "junction {}: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The built examples, packed by `junction plugin pack`, pushed to a
/// running host with `junction plugin push --activate`, and called through
/// the host's API: the connector by `junction invoke`, the transforms by
/// `POST /v1/transforms/{plugin}/apply`.
#[test]
fn the_examples_are_pushed_to_a_running_host_and_called() {
    let built: Vec<&str> = ["js-echo", "js-person", "py-person"]
        .into_iter()
        .filter(|name| {
            let there = repo()
                .join("examples")
                .join(name)
                .join("target")
                .join(format!("{name}.wasm"))
                .is_file();
            if !there {
                eprintln!("SKIPPED: examples/{name} is not built (.ci/run builds it)");
            }
            there
        })
        .collect();
    if built.is_empty() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("junction.toml");
    std::fs::write(
        &config,
        format!(
            "database = {:?}\ncache_dir = {:?}\n[tokens.ops]\ntoken = \"{TOKEN}\"\nscope = \"admin\"\n",
            dir.path().join("j.db"),
            dir.path().join("cache"),
        ),
    )
    .unwrap();
    let client = reqwest::blocking::Client::new();
    // Until the host answers.
    let (_server, url) = support::serve(&config, "the host did not start", |url| {
        client
            .get(format!("{url}/v1/plugins"))
            .bearer_auth(TOKEN)
            .send()
            .is_ok_and(|r| r.status().is_success())
    });
    let env = [("JUNCTION_URL", url.as_str()), ("JUNCTION_TOKEN", TOKEN)];
    for name in &built {
        let example = repo().join("examples").join(name);
        let package = dir.path().join(format!("{name}.jpkg"));
        let wasm = format!("target/{name}.wasm");
        let package_arg = package.to_str().unwrap();
        ok(
            &example,
            &["plugin", "pack", "--wasm", &wasm, "--out", package_arg],
            &env,
        );
        let pushed = ok(
            dir.path(),
            &["plugin", "push", package_arg, "--activate"],
            &env,
        );
        assert!(pushed.contains(name), "{pushed}");
    }
    if built.contains(&"js-echo") {
        let document = json!({"plugin": "js-echo", "config": {"base_url": "http://127.0.0.1:9"}});
        ok(
            dir.path(),
            &["connection", "put", "echo", "--json", &document.to_string()],
            &env,
        );
        let said = ok(
            dir.path(),
            &[
                "invoke",
                "echo",
                "echo",
                "--input",
                r#"{"message":"hi","times":2}"#,
            ],
            &env,
        );
        assert!(said.contains("hi hi"), "{said}");
        // A host the plugin's manifest does not list is refused by the host.
        let refused = junction(
            dir.path(),
            &["invoke", "echo", "get-thing", "--input", r#"{"id":"7"}"#],
            &env,
        );
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{stderr}");
    }
    for name in built.iter().filter(|n| n.ends_with("-person")) {
        let answer: Value = client
            .post(format!("{url}/v1/transforms/{name}/apply"))
            .bearer_auth(TOKEN)
            .json(&json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ADA@x.org"}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(
            answer["outputs"][0],
            json!({"name": "Ada Lovelace", "email": "ada@x.org"}),
            "{name}: {answer}"
        );
    }
}

/// `junction plugin new --lang js` (a connector) and `--lang python` (a
/// transform) write plugins that build with their language's tools, pass
/// the scaffold's cases on the host and pack; a Python connector is refused
/// with the reason.
#[test]
fn plugins_scaffolded_in_javascript_and_python_build_pass_their_cases_and_pack() {
    let tmp = tempfile::tempdir().unwrap();
    let refused = junction(
        tmp.path(),
        &["plugin", "new", "py-conn", "--lang", "python"],
        &[],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("write the connector in Rust or JavaScript"),
        "{stderr}"
    );
    assert!(!tmp.path().join("py-conn").exists());

    let componentize_py = repo().join("examples/py-person/target/venv/bin/componentize-py");
    let npm = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let cases: [(&str, &str, &str, bool); 2] = [
        ("scaffold-js", "js", "connector", npm),
        (
            "scaffold-py",
            "python",
            "transform",
            componentize_py.is_file(),
        ),
    ];
    for (name, lang, kind, can_build) in cases {
        let made = ok(
            tmp.path(),
            &["plugin", "new", name, "--lang", lang, "--kind", kind],
            &[],
        );
        assert!(
            made.contains(&format!("created {name}/plugin.toml")),
            "{made}"
        );
        let dir = tmp.path().join(name);
        assert!(dir.join("wit/plugin.wit").is_file());
        if !can_build {
            eprintln!(
                "SKIPPED: building the {lang} scaffold needs {}",
                if lang == "js" {
                    "npm"
                } else {
                    "examples/py-person/build.sh to have run"
                }
            );
            continue;
        }
        let env = [("COMPONENTIZE_PY", componentize_py.to_str().unwrap())];
        let tested = ok(&dir, &["plugin", "test"], &env);
        assert!(tested.contains("3 passed, 0 failed"), "{tested}");
        let packed = ok(&dir, &["plugin", "pack"], &env);
        assert!(
            packed.contains(&format!("packed {name}-0.1.0.jpkg ({kind}")),
            "{packed}"
        );
        // An edit after the build: pack refuses the stale component.
        let app = dir.join(if lang == "js" { "app.js" } else { "app.py" });
        let source = std::fs::read_to_string(&app).unwrap();
        std::fs::write(&app, format!("{source}\n")).unwrap();
        let stale = junction(&dir, &["plugin", "pack"], &env);
        assert!(!stale.status.success());
        let said = String::from_utf8_lossy(&stale.stderr);
        assert!(said.contains("is older than"), "{said}");
    }
}
