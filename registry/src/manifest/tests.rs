use super::*;

fn with(from: &str, to: &str) -> Result<Manifest, ManifestError> {
    assert!(JIRA.contains(from), "{from}");
    Manifest::parse(&JIRA.replacen(from, to, 1))
}

fn err(from: &str, to: &str) -> String {
    with(from, to).unwrap_err().to_string()
}

#[test]
fn parses_the_documented_example() {
    let m = Manifest::parse(JIRA).unwrap();
    assert_eq!(m.plugin.name, "jira");
    assert_eq!(m.plugin.version, semver::Version::new(0, 1, 0));
    assert_eq!(m.plugin.world, World::Connector);
    assert_eq!(m.plugin.operations.len(), 3);
    assert_eq!(m.capabilities.auth, Auth::Basic);
    assert!(m.capabilities.kv);
    assert_eq!(m.limits.memory_mib, Some(64));
    assert_eq!(m.limits.concurrency, Some(16));
}

#[test]
fn round_trips_through_to_toml() {
    let m = Manifest::parse(JIRA).unwrap();
    let text = m.to_toml();
    assert!(text.starts_with("[plugin]\nname = \"jira\"\n"), "{text}");
    assert_eq!(Manifest::parse(&text).unwrap(), m);

    let minimal = Manifest::parse(
        "[plugin]\nname = \"map\"\nversion = \"1.2.3-rc.1\"\nworld = \"transform\"\nwit = \"junction:plugin@0.1.0\"\ndescription = \"say \\\"hi\\\"\"\n",
    )
    .unwrap();
    assert_eq!(minimal.capabilities, Capabilities::default());
    assert!(minimal.limits.is_empty());
    assert!(!minimal.to_toml().contains("[limits]"));
    assert_eq!(Manifest::parse(&minimal.to_toml()).unwrap(), minimal);
}

#[test]
fn unknown_and_missing_keys_are_refused() {
    let e = err("kv = true", "kv = true\nkvv = 1");
    assert!(e.contains("unknown field `kvv`"), "{e}");
    let e = err("[limits]", "[limitz]");
    assert!(e.contains("unknown field `limitz`"), "{e}");
    let e = err("name = \"jira\"\n", "");
    assert!(e.contains("missing field `name`"), "{e}");
    let e = Manifest::parse("not = [toml").unwrap_err();
    assert!(matches!(e, ManifestError::Syntax(_)));
}

#[test]
fn bad_values_name_their_key() {
    assert_eq!(
        err("\"jira\"", "\"Jira!\""),
        "`plugin.name` \"Jira!\" is not valid: use 1 to 64 characters of a-z, 0-9, `-` and `_`"
    );
    assert!(with("\"jira\"", &format!("\"{}\"", "a".repeat(65))).is_err());
    assert!(with("\"jira\"", &format!("\"{}\"", "a".repeat(64))).is_ok());
    assert!(with("\"jira\"", "\"\"").is_err());
    assert!(
        err("\"0.1.0\"", "\"1.0\"")
            .starts_with("`plugin.version` \"1.0\" is not a semver version: ")
    );
    assert_eq!(
        err("\"connector\"", "\"source\""),
        "`plugin.world` \"source\" is not a junction:plugin world; use `connector` or `transform`"
    );
    assert_eq!(
        err("junction:plugin@0.1.0", "junction:plugin@0.2.0"),
        "`plugin.wit` \"junction:plugin@0.2.0\" is not supported; this host supports `junction:plugin@0.1.0`"
    );
    assert_eq!(
        err("\"basic\"", "\"digest\""),
        "`capabilities.auth` \"digest\" is not an auth scheme; use one of none, basic, bearer, api_key, oauth2_client_credentials, oauth2_refresh_token"
    );
    assert_eq!(
        err("memory_mib = 64", "memory_mib = 0"),
        "`limits.memory_mib` must be greater than zero"
    );
    assert_eq!(
        err("\"get-issue\"", "\"create-issue\""),
        "`plugin.operations` entry \"create-issue\" is repeated"
    );
}

#[test]
fn every_auth_scheme_parses() {
    for auth in Auth::ALL {
        let m = with("\"basic\"", &format!("\"{auth}\"")).unwrap();
        assert_eq!(m.capabilities.auth, auth);
    }
}

#[test]
fn transforms_cannot_ask_for_network_or_storage() {
    let transform = JIRA
        .replace("\"connector\"", "\"transform\"")
        .replace(
            "operations = [\"create-project\", \"create-issue\", \"get-issue\"]",
            "",
        )
        .replace("auth = \"basic\"", "");
    assert_eq!(
        Manifest::parse(&transform).unwrap_err().to_string(),
        "`capabilities.outbound_hosts`: a transform is a pure mapping and cannot request network access"
    );
    let transform = transform.replace("outbound_hosts = [\"*.atlassian.net\"]", "");
    assert_eq!(
        Manifest::parse(&transform).unwrap_err().to_string(),
        "`capabilities.kv`: a transform is a pure mapping and cannot request key-value storage"
    );
    let transform = transform.replace("kv = true", "kv = false");
    assert_eq!(
        Manifest::parse(&transform).unwrap().plugin.world,
        World::Transform
    );
    let with_ops = transform.replace("triggers = []", "triggers = []\noperations = [\"x\"]");
    assert!(
        Manifest::parse(&with_ops)
            .unwrap_err()
            .to_string()
            .starts_with("`plugin.operations`")
    );
}

#[test]
fn host_patterns() {
    for good in [
        "api.example.com",
        "*.atlassian.net",
        "localhost",
        "localhost:8080",
        "127.0.0.1:443",
        "*.my-company.example.com:8443",
    ] {
        assert_eq!(check_host(good), Ok(()), "{good}");
    }
    for bad in [
        "",
        "*",
        "*.com",
        "https://example.com",
        "example.com/path",
        "Example.com",
        "a.*.com",
        "example.com:0",
        "example.com:99999",
        "example.com:",
        "-bad.com",
        "a..b",
        "[::1]:80",
    ] {
        assert!(check_host(bad).is_err(), "{bad}");
    }
    assert_eq!(
        err("\"*.atlassian.net\"", "\"https://x.atlassian.net\""),
        "`capabilities.outbound_hosts` entry \"https://x.atlassian.net\" is not `host`, `host:port` or `*.domain`: use a host name, not a URL or a path"
    );
}
