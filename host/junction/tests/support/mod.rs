//! What the binary's integration tests share: a `junction serve` child
//! process on a free loopback port.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `junction serve`, killed when dropped.
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `junction serve --config CONFIG` on a free loopback port and
/// polls (never sleeps on a guess) until `ready(url)` holds, at most a
/// minute; `what` names what it waits for in the failure.
pub fn serve(config: &Path, what: &str, ready: impl Fn(&str) -> bool) -> (Server, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_junction"))
            .args(["serve", "--config"])
            .arg(config)
            .env("JUNCTION_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(&url) {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(25));
    }
    (server, url)
}
