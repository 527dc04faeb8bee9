#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `junction plugin new`: the crate it writes builds for wasm32-wasip2 and
//! passes its own test; names and directories it must not use are refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use junction::scaffold::{Kind, ScaffoldError, SdkSource, new_plugin};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("host/junction/ lies two levels below the repository")
        .to_path_buf()
}

fn local_sdk() -> SdkSource {
    SdkSource::Path(repo().join("sdk"))
}

/// Takes out what cargo sets for this test's own build, which must not leak
/// into the plugin's.
fn without_build_env(cmd: &mut Command) {
    for key in [
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(key);
    }
}

/// `cargo <args>` in `dir`, as a plugin author would run it, sharing one
/// target directory across runs so that only the new crate is recompiled.
fn cargo(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", repo().join("target/scaffold-test"));
    without_build_env(&mut cmd);
    let output = cmd.output().expect("running cargo");
    assert!(
        output.status.success(),
        "cargo {} in {} failed:\n{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn build_component(dir: &Path, krate: &str) -> PathBuf {
    cargo(dir, &["build", "--release", "--target", "wasm32-wasip2"]);
    repo()
        .join("target/scaffold-test/wasm32-wasip2/release")
        .join(format!("{krate}.wasm"))
}

fn relative(files: &[PathBuf], dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    names.sort();
    names
}

/// The crate's manifest as `plugin pack` completes it: plugin.toml gives no
/// version, so the crate's (0.1.0) is written in.
fn manifest(dir: &Path) -> junction_registry::Manifest {
    let text = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    assert!(
        !text.contains("\nversion"),
        "the version is Cargo.toml's: {text}"
    );
    let text = text.replace("[plugin]\n", "[plugin]\nversion = \"0.1.0\"\n");
    junction_registry::Manifest::parse(&text).expect("plugin.toml is a valid manifest")
}

#[test]
fn connector_builds_for_wasm_and_passes_its_own_test() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("scaffold-connector");
    let files = new_plugin(Kind::Connector, "scaffold-connector", &dir, local_sdk()).unwrap();
    assert_eq!(
        relative(&files, &dir),
        [
            ".gitignore",
            "Cargo.toml",
            "README.md",
            "plugin.toml",
            "src/lib.rs",
            "tests/cases.toml"
        ]
    );
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("cargo build --release --target wasm32-wasip2"));

    let manifest = manifest(&dir);
    assert_eq!(manifest.plugin.name, "scaffold-connector");
    assert_eq!(manifest.plugin.version.to_string(), "0.1.0");
    assert_eq!(manifest.plugin.world.as_str(), "connector");
    assert_eq!(manifest.plugin.operations, ["ping", "echo"]);
    assert!(manifest.capabilities.outbound_hosts.is_empty());
    assert!(!manifest.capabilities.kv);

    let wasm = build_component(&dir, "scaffold_connector");
    let bytes = std::fs::read(&wasm).expect("the component was built");
    let inspection = junction_registry::inspect(&bytes).expect("the registry accepts it");
    assert_eq!(inspection.world.as_str(), "connector");

    // `plugin pack` makes the host's upload checks and refuses a component
    // older than its sources.
    let sdk_dir = tmp.path().join("unused-sdk");
    let packed = junction(&dir, &sdk_dir, &["plugin", "pack"]);
    assert!(
        String::from_utf8_lossy(&packed.stdout).contains("packed scaffold-connector-0.1.0.jpkg")
    );
    // `plugin inspect` makes the same checks: the package passes, one whose
    // manifest disagrees with the component's `info` is refused.
    let inspected = junction(
        &dir,
        &sdk_dir,
        &["plugin", "inspect", "scaffold-connector-0.1.0.jpkg"],
    );
    let said = String::from_utf8_lossy(&inspected.stdout);
    assert!(
        said.contains("info:    scaffold-connector@0.1.0") && said.contains("a host takes it"),
        "{said}"
    );
    let packed_bytes = std::fs::read(dir.join("scaffold-connector-0.1.0.jpkg")).unwrap();
    let packed = junction_registry::Package::from_bytes(&packed_bytes).unwrap();
    assert!(packed.manifest_text().contains("version = \"0.1.0\""));
    let forged = junction_registry::Package::new(
        packed
            .manifest_text()
            .replace("version = \"0.1.0\"", "version = \"0.3.0\""),
        bytes.clone(),
    );
    std::fs::write(dir.join("forged.jpkg"), forged.to_bytes()).unwrap();
    let refused = junction_fails(&dir, &["plugin", "inspect", "forged.jpkg"]);
    assert!(
        refused.contains("a host would refuse this package") && refused.contains("0.3.0"),
        "{refused}"
    );
    std::fs::remove_file(dir.join("forged.jpkg")).unwrap();
    let source = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    std::fs::write(dir.join("src/lib.rs"), format!("{source}\n// edited\n")).unwrap();
    let stale = junction_fails(&dir, &["plugin", "pack"]);
    assert!(
        stale.contains("run `junction plugin build` first"),
        "{stale}"
    );
    build_component(&dir, "scaffold_connector");
    // A version in plugin.toml other than Cargo.toml's is refused, naming both.
    let manifest_text = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    std::fs::write(
        dir.join("plugin.toml"),
        manifest_text.replace("[plugin]\n", "[plugin]\nversion = \"0.2.0\"\n"),
    )
    .unwrap();
    let disagrees = junction_fails(&dir, &["plugin", "pack"]);
    assert!(
        disagrees.contains("`plugin.version` is \"0.2.0\" but Cargo.toml's version is \"0.1.0\""),
        "{disagrees}"
    );
    std::fs::write(dir.join("plugin.toml"), manifest_text).unwrap();

    let test = cargo(&dir, &["test"]);
    let stdout = String::from_utf8_lossy(&test.stdout);
    assert!(stdout.contains("test result: ok. 3 passed"), "{stdout}");

    // The scaffold's cases pass on the host's engine; a wrong expectation
    // fails its case, naming the field.
    let tested = junction(&dir, &sdk_dir, &["plugin", "test"]);
    let said = String::from_utf8_lossy(&tested.stdout);
    assert!(said.contains("ok    echo repeats the message"), "{said}");
    assert!(said.contains("3 passed, 0 failed"), "{said}");
    let cases = std::fs::read_to_string(dir.join("tests/cases.toml")).unwrap();
    std::fs::write(
        dir.join("tests/cases.toml"),
        cases.replace("\"hi hi hi\"", "\"hi hi\""),
    )
    .unwrap();
    let (stdout, stderr) = junction_fails_in(&dir, &["plugin", "test"], "target/scaffold-test");
    assert!(
        stdout.contains("FAIL  echo repeats the message")
            && stdout.contains("output.message is \"hi hi hi\", expected \"hi hi\""),
        "{stdout}"
    );
    assert!(stdout.contains("2 passed, 1 failed"), "{stdout}");
    assert!(
        stderr.contains("failing cases: echo repeats the message"),
        "{stderr}"
    );
}

/// `junction plugin test` on the shipped HubSpot connector: its operations,
/// a paged `read` stream, a webhook and `check`, against the recorded
/// HubSpot answers in plugins/hubspot/tests/cassettes. A request the
/// cassette does not hold fails the case and is named.
#[test]
fn plugin_test_replays_the_hubspot_cassettes() {
    let hubspot = repo().join("plugins/hubspot");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_junction"));
    cmd.current_dir(&hubspot)
        .args(["plugin", "test"])
        .env("CARGO_TARGET_DIR", repo().join("target/plugins"));
    without_build_env(&mut cmd);
    let tested = cmd.output().expect("running junction");
    let said = String::from_utf8_lossy(&tested.stdout);
    assert!(
        tested.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&tested.stderr)
    );
    assert!(said.contains("6 passed, 0 failed"), "{said}");
    assert!(
        said.contains("ok    the deals stream follows HubSpot's paging to the end"),
        "{said}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let cases = tmp.path().join("cases.toml");
    std::fs::write(
        &cases,
        "[connection]\nconfig = { base_url = \"{server}\" }\n\
         auth = { type = \"bearer\", token = \"t\" }\n\n\
         [[case]]\nname = \"a deal without its cassette\"\noperation = \"get-deal\"\n\
         input = { id = \"42\" }\noutput = { id = \"42\" }\n",
    )
    .unwrap();
    let cases = cases.to_string_lossy().into_owned();
    let (stdout, _) = junction_fails_in(
        &hubspot,
        &["plugin", "test", "--cases", &cases],
        "target/plugins",
    );
    assert!(
        stdout.contains("FAIL  a deal without its cassette")
            && stdout.contains("the cassette holds no answer for GET /crm/v3/objects/deals/42"),
        "{stdout}"
    );
}

/// `junction plugin test <args>` in the shipped plugin `plugin`'s crate,
/// built into target/plugins; its stdout when it passes.
fn plugin_test_passes(plugin: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_junction"));
    cmd.current_dir(repo().join("plugins").join(plugin))
        .args(["plugin", "test"])
        .args(args)
        .env("CARGO_TARGET_DIR", repo().join("target/plugins"));
    without_build_env(&mut cmd);
    let tested = cmd.output().expect("running junction");
    let said = String::from_utf8_lossy(&tested.stdout).into_owned();
    assert!(
        tested.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&tested.stderr)
    );
    said
}

/// `junction plugin test --server --record` against the stand-ins of every
/// shipped connector but HubSpot (whose cassettes are written from its
/// documentation) writes each case's cassette (the token and the `[record]
/// redact` fields left out), the cases then replay from them offline, and
/// so do the cassettes shipped in plugins/<connector>/tests/cassettes,
/// which were recorded the same way (`JUNCTION_BLESS_CASSETTES=1` on this
/// test records them again).
#[test]
fn plugin_test_records_cassettes_from_a_running_system_and_replays_them() {
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let netsuite = tokio
        .block_on(junction_standins::NetsuiteStandin::start(
            "netsuite-sandbox-token",
        ))
        .unwrap();
    record_and_replay(
        "netsuite",
        &netsuite.base_url(),
        &["netsuite-sandbox-token", "ap@globex.example"],
        &["create-job", "no-such-customer", "upsert-customer"],
    );
    let jira = tokio
        .block_on(junction_standins::JiraStandin::start(
            "ops@acme.example",
            "jira-sandbox-token",
        ))
        .unwrap();
    record_and_replay(
        "jira",
        &jira.base_url(),
        &["jira-sandbox-token", "ops@acme.example"],
        &["create-issue", "create-project", "get-issue"],
    );
    let psa = tokio
        .block_on(junction_standins::PsaStandin::start("psa-sandbox-token"))
        .unwrap();
    for name in ["Ada Lovelace", "Grace Hopper"] {
        psa.add_person(junction_standins::psa::NewPerson {
            name: name.into(),
            email: format!(
                "{}@consultancy.example",
                name.to_lowercase().replace(' ', ".")
            ),
            skills: vec!["netsuite".into()],
            available_hours: 120.0,
            cost_rate: 95.0,
            currency: "USD".into(),
        });
    }
    record_and_replay(
        "psa",
        &psa.base_url(),
        &["psa-sandbox-token", "@consultancy.example"],
        &["list-people", "no-such-project", "upsert-project"],
    );
    let salesforce = tokio
        .block_on(junction_standins::SalesforceStandin::start(
            "salesforce-sandbox-token",
        ))
        .unwrap();
    record_and_replay(
        "salesforce",
        &salesforce.base_url(),
        &["salesforce-sandbox-token"],
        &["no-such-account", "upsert-creates", "upsert-updates"],
    );
    let contracts = tokio
        .block_on(junction_standins::ContractStandin::start(
            "contract-sandbox-token",
        ))
        .unwrap();
    record_and_replay(
        "contract",
        &contracts.base_url(),
        &["contract-sandbox-token", "hank@globex.example"],
        &["create-contract", "no-such-contract"],
    );
    let proposals = tokio
        .block_on(junction_standins::ProposalStandin::start(
            "proposal-sandbox-key",
        ))
        .unwrap();
    record_and_replay(
        "proposal",
        &proposals.base_url(),
        &["proposal-sandbox-key", "hank@globex.example"],
        &["create-proposal", "no-such-proposal"],
    );
}

/// Records the cases of shipped plugin `plugin` from the system at `base`
/// into a new directory, checks no `secrets` got into them and that they
/// replay, then replays the shipped cassettes.
fn record_and_replay(plugin: &str, base: &str, secrets: &[&str], cassettes: &[&str]) {
    let shipped = repo().join("plugins").join(plugin).join("tests");
    let tmp = tempfile::tempdir().unwrap();
    let cases = tmp.path().join("cases.toml");
    std::fs::copy(shipped.join("cases.toml"), &cases).unwrap();
    let count = std::fs::read_to_string(&cases)
        .unwrap()
        .matches("[[case]]")
        .count();
    let all_passed = format!("{count} passed, 0 failed");
    let cases = cases.to_string_lossy().into_owned();
    let recorded = plugin_test_passes(plugin, &["--cases", &cases, "--server", base, "--record"]);
    assert!(recorded.contains(&all_passed), "{recorded}");
    assert!(
        recorded.contains("recorded 1 exchange(s) into"),
        "{recorded}"
    );
    let dir = tmp.path().join("cassettes");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let expected: Vec<String> = cassettes.iter().map(|c| format!("{c}.toml")).collect();
    assert_eq!(names, expected);
    for name in &names {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "{plugin} {name} holds {secret}: {text}"
            );
        }
        assert!(text.starts_with("# Recorded on "), "{text}");
        assert!(
            !text.contains(base),
            "{plugin} {name} holds the system's address: {text}"
        );
    }
    let replayed = plugin_test_passes(plugin, &["--cases", &cases]);
    assert!(replayed.contains(&all_passed), "{replayed}");
    if std::env::var_os("JUNCTION_BLESS_CASSETTES").is_some() {
        std::fs::create_dir_all(shipped.join("cassettes")).unwrap();
        for name in &names {
            std::fs::copy(dir.join(name), shipped.join("cassettes").join(name)).unwrap();
        }
    }
    let shipped_replay = plugin_test_passes(plugin, &[]);
    assert!(shipped_replay.contains(&all_passed), "{shipped_replay}");
}

/// `junction <args>` in `dir`, as a plugin author runs it, with the SDK
/// written to `sdk_dir`.
fn junction(dir: &Path, sdk_dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_junction"));
    cmd.current_dir(dir)
        .args(args)
        .env("JUNCTION_SDK_DIR", sdk_dir)
        .env("CARGO_TARGET_DIR", repo().join("target/scaffold-test"));
    without_build_env(&mut cmd);
    let output = cmd.output().expect("running junction");
    assert!(
        output.status.success(),
        "junction {} failed:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `junction <args>` in `dir`, which must fail; what it said on stderr.
fn junction_fails(dir: &Path, args: &[&str]) -> String {
    junction_fails_in(dir, args, "target/scaffold-test").1
}

/// `junction <args>` in `dir`, building into `target` of the repository,
/// which must fail; what it said on stdout and on stderr.
fn junction_fails_in(dir: &Path, args: &[&str], target: &str) -> (String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_junction"));
    cmd.current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", repo().join(target));
    without_build_env(&mut cmd);
    let output = cmd.output().expect("running junction");
    assert!(
        !output.status.success(),
        "junction {} succeeded",
        args.join(" ")
    );
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Without a checkout: `junction plugin new` writes the SDK the binary
/// carries (and its WIT) and points the crate at it; `junction plugin
/// build` makes the component; the crate passes its own tests.
#[test]
fn a_transform_made_with_the_sdk_the_binary_carries_builds_and_passes_its_own_test() {
    let tmp = tempfile::tempdir().unwrap();
    let sdk_dir = tmp.path().join("sdk-home");
    let made = junction(
        tmp.path(),
        &sdk_dir,
        &["plugin", "new", "scaffold-transform", "--kind", "transform"],
    );
    let said = String::from_utf8_lossy(&made.stdout);
    assert!(said.contains("(carried by this binary)"), "{said}");
    assert!(sdk_dir.join("sdk/Cargo.toml").is_file());
    assert!(sdk_dir.join("wit/plugin.wit").is_file());
    let dir = tmp.path().join("scaffold-transform");
    let cargo_toml = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(cargo_toml.contains("sdk-home"), "{cargo_toml}");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        readme.contains("cargo doc -p junction-sdk --open"),
        "{readme}"
    );

    let manifest = manifest(&dir);
    assert_eq!(manifest.plugin.world.as_str(), "transform");
    assert!(manifest.plugin.operations.is_empty());

    junction(&dir, &sdk_dir, &["plugin", "build"]);
    let wasm = repo().join("target/scaffold-test/wasm32-wasip2/release/scaffold_transform.wasm");
    let bytes = std::fs::read(&wasm).expect("the component was built");
    let inspection = junction_registry::inspect(&bytes).expect("the registry accepts it");
    assert_eq!(inspection.world.as_str(), "transform");

    let test = cargo(&dir, &["test"]);
    let stdout = String::from_utf8_lossy(&test.stdout);
    assert!(stdout.contains("test result: ok. 3 passed"), "{stdout}");

    let tested = junction(&dir, &sdk_dir, &["plugin", "test"]);
    let said = String::from_utf8_lossy(&tested.stdout);
    assert!(said.contains("3 passed, 0 failed"), "{said}");
}

#[test]
fn names_that_are_not_plugin_and_crate_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for name in [
        "",
        "1password",
        "Jira",
        "acme.crm",
        "acme crm",
        "-x",
        &"a".repeat(65),
    ] {
        let dir = tmp.path().join("p");
        let error = new_plugin(Kind::Connector, name, &dir, local_sdk()).unwrap_err();
        assert!(
            matches!(error, ScaffoldError::BadName(_)),
            "{name}: {error}"
        );
        assert!(error.to_string().contains("a-z, 0-9"), "{error}");
        assert!(!dir.exists(), "nothing is created for {name:?}");
    }
    let error = new_plugin(Kind::Transform, "fn", &tmp.path().join("p"), local_sdk()).unwrap_err();
    assert!(matches!(error, ScaffoldError::ReservedName(_)), "{error}");
    // The longest name is fine.
    let dir = tmp.path().join("long");
    new_plugin(Kind::Connector, &"a".repeat(64), &dir, local_sdk()).unwrap();
}

#[test]
fn an_existing_non_empty_directory_or_file_is_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("taken");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("Cargo.toml"), "mine").unwrap();
    let error = new_plugin(Kind::Connector, "taken", &dir, local_sdk()).unwrap_err();
    assert!(matches!(error, ScaffoldError::NotEmpty(_)), "{error}");
    assert!(
        error.to_string().contains("refusing to overwrite"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("Cargo.toml")).unwrap(),
        "mine"
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);

    let file = tmp.path().join("file");
    std::fs::write(&file, "mine").unwrap();
    let error = new_plugin(Kind::Connector, "file", &file, local_sdk()).unwrap_err();
    assert!(matches!(error, ScaffoldError::NotEmpty(_)), "{error}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");

    // An empty directory is used as it is.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    new_plugin(Kind::Transform, "empty", &empty, local_sdk()).unwrap();
    assert!(empty.join("src/lib.rs").is_file());
}

#[test]
fn a_path_that_is_not_the_sdk_is_refused_and_a_version_is_written_as_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let error = new_plugin(
        Kind::Connector,
        "p",
        &dir,
        SdkSource::Path(tmp.path().join("nowhere")),
    )
    .unwrap_err();
    assert!(matches!(error, ScaffoldError::NoSdk(_)), "{error}");
    assert!(!dir.exists());

    new_plugin(Kind::Transform, "p", &dir, SdkSource::Version("0.1".into())).unwrap();
    let cargo_toml = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        cargo_toml.contains(r#"junction-sdk = { version = "0.1", features = ["transform"] }"#),
        "{cargo_toml}"
    );
}

/// `junction dev` on a new transform: it starts a local host, swaps in the
/// first build, and after an edit swaps in the next one without a restart,
/// saying which of the crate's tests the edit broke.
#[test]
fn dev_hot_swaps_each_build_into_a_local_host_and_names_failing_tests() {
    use std::io::BufRead as _;
    let tmp = tempfile::tempdir().unwrap();
    let sdk_dir = tmp.path().join("sdk-home");
    junction(
        tmp.path(),
        &sdk_dir,
        &["plugin", "new", "scaffold-dev", "--kind", "transform"],
    );
    let dir = tmp.path().join("scaffold-dev");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_junction"));
    cmd.current_dir(&dir)
        .arg("dev")
        .env("JUNCTION_SDK_DIR", &sdk_dir)
        .env("CARGO_TARGET_DIR", repo().join("target/scaffold-test"))
        .env_remove("JUNCTION_URL")
        .env_remove("JUNCTION_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    without_build_env(&mut cmd);
    let mut child = cmd.spawn().expect("running junction dev");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let _child = Kill(child);
    let (lines, said) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let next = |starts: &str| -> String {
        loop {
            let line = said
                .recv_timeout(std::time::Duration::from_secs(300))
                .unwrap_or_else(|_| panic!("junction dev said no `{starts}` line"));
            if line.starts_with(starts) {
                return line;
            }
        }
    };
    let host = next("local host at ");
    let url = host
        .split("JUNCTION_URL=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let token = host
        .split("JUNCTION_TOKEN=")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let apply = || -> serde_json::Value {
        reqwest::blocking::Client::new()
            .post(format!("{url}/v1/transforms/scaffold-dev/apply"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"first_name": "Ada", "last_name": "Lovelace"}))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let first = next("swapped ");
    assert!(first.contains("scaffold-dev@0.1.0-dev."), "{first}");
    assert!(first.ends_with("tests ok"), "{first}");
    assert_eq!(apply()["outputs"][0]["name"], "Ada Lovelace");

    // An edit: the next build is swapped in; the crate's own test of the
    // old behaviour fails, and dev says so.
    let lib = dir.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    let edited = source.replace(
        "format!(\"{} {}\", contact.first_name.trim(), contact.last_name.trim())",
        "format!(\"{} {} (edited)\", contact.first_name.trim(), contact.last_name.trim())",
    );
    assert_ne!(
        source, edited,
        "the template changed; change this test with it"
    );
    std::fs::write(&lib, edited).unwrap();
    let second = next("swapped ");
    assert_ne!(first, second);
    assert!(
        second.contains("FAILING TESTS: ") && second.contains("tests::maps_a_contact_to_a_person"),
        "{second}"
    );
    assert_eq!(apply()["outputs"][0]["name"], "Ada Lovelace (edited)");
}
