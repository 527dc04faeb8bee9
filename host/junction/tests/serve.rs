//! `junction serve` as an operator runs it: a config file, `JUNCTION_*`
//! overrides, plugins loaded from a directory at start.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::Read as _;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn serve_loads_the_plugin_directory_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir(&plugins).unwrap();
    let jira = &junction::shipped::packages()[0];
    std::fs::write(plugins.join("jira.jpkg"), jira.to_bytes()).unwrap();
    std::fs::write(plugins.join("broken.jpkg"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(plugins.join("README.txt"), b"not a plugin").unwrap();
    let config = dir.path().join("junction.toml");
    std::fs::write(
        &config,
        format!(
            "database = {:?}\ncache_dir = {:?}\nplugin_dir = {:?}\n[tokens.reader]\ntoken = \"reader-token-0123456789\"\nscope = \"read\"\n",
            dir.path().join("j.db"),
            dir.path().join("cache"),
            plugins
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_junction"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("JUNCTION_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server(child);

    let client = reqwest::blocking::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send()
            && r.status().is_success()
        {
            break;
        }
        if let Some(status) = server.0.try_wait().unwrap() {
            let mut stderr = String::new();
            server
                .0
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("junction serve exited with {status}:\n{stderr}");
        }
        assert!(
            Instant::now() < deadline,
            "junction serve did not become healthy"
        );
        // Poll interval, not synchronisation: the loop ends on the health answer.
        std::thread::sleep(Duration::from_millis(25));
    }

    // A second host on the same SQLite file refuses to start, and says why.
    let second = Command::new(env!("CARGO_BIN_EXE_junction"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("JUNCTION_LISTEN", format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("SQLite is for one host"), "{said}");
    assert!(said.contains(&format!("pid {}", server.0.id())), "{said}");

    // SIGHUP reloads the tokens (and trusted keys) from the file.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}[tokens.late]\ntoken = \"late-token-0123456789\"\nscope = \"read\"\n"),
    )
    .unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = client
            .get(format!("{base}/v1/plugins"))
            .bearer_auth("late-token-0123456789")
            .send()
            .unwrap()
            .status();
        if status.is_success() {
            break;
        }
        assert_eq!(status, 401);
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload the tokens"
        );
        // Poll interval, not synchronisation: the loop ends on the new token's answer.
        std::thread::sleep(Duration::from_millis(25));
    }

    let unauthorized = client.get(format!("{base}/v1/plugins")).send().unwrap();
    assert_eq!(unauthorized.status(), 401);
    let plugins: serde_json::Value = client
        .get(format!("{base}/v1/plugins"))
        .bearer_auth("reader-token-0123456789")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let names: Vec<&str> = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["jira"],
        "the broken component was skipped: {plugins}"
    );
}
