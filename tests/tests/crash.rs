//! The crash test of durable flows: a host process is SIGKILLed at random
//! moments while signed webhooks feed a four-step flow, and restarted on the
//! same database each time. At the end every acknowledged event has exactly
//! one run, every run ended as the flow says, and no side effect was applied
//! twice.
//!
//! - The host runs as a process of its own: this test executable started
//!   again in host mode ([`crash_host_process`]), which calls what
//!   `junction serve` calls. Each start opens the database and restores the
//!   plugins from it.
//! - The flow `orders` is started by `order.placed` events of the `shop`
//!   connection (the echo guest, HubSpot v3 signatures). Its steps `reserve`,
//!   `charge`, `invoice` and `notify` POST to a ledger stand-in that applies
//!   each `Idempotency-Key` once (the echo guest sends the step's key
//!   `<run>:<step>`). Every tenth event asks `invoice` for a method the
//!   connector refuses (`invalid-input`, not retried): those runs compensate
//!   `charge` then `reserve` and are dead-lettered.
//! - Senders deliver each event until they get a 2xx, as webhook sources do;
//!   refused connections while the host is down are expected.
//! - The kill times come from a seeded generator; the seed is printed and
//!   `JUNCTION_CRASH_SEED` replays it.
//!
//! The PostgreSQL variants need `JUNCTION_TEST_POSTGRES_URL`; without it they
//! print a SKIPPED line. The two-host variant runs a second host on the same
//! database that is never killed and spreads the webhooks over both.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use junction_registry::Package;
use junction_standins::LedgerStandin;
use junction_standins::hubspot::sign_v3;
use junction_tests::guests;
use serde_json::{Value, json};

/// Set in a host child: the path of its configuration file.
const HOST_CONFIG_VAR: &str = "JUNCTION_CRASH_HOST_CONFIG";
/// Replays a seed printed by an earlier run.
const SEED_VAR: &str = "JUNCTION_CRASH_SEED";

const ADMIN: &str = "crash-test-admin-token-5c1d";
const WEBHOOK_SECRET: &str = "shop-webhook-secret-9e41b7";
/// 32 bytes, base64: the key sealing the webhook secret (several hosts share it).
const SECRET_KEY: &str = "Y3Jhc2gtdGVzdC1zZWNyZXQta2V5LTMyLWJ5dGVzISE=";

const EVENTS: usize = 200;
const MIN_KILLS: usize = 20;
/// Events `n` with `n % POISON_EVERY == POISON_AT` carry the injected permanent error.
const POISON_EVERY: usize = 10;
const POISON_AT: usize = 3;
const SENDERS: usize = 8;
/// How long the ledger takes per request: a kill can land while a call is in flight.
const LEDGER_LATENCY: Duration = Duration::from_millis(15);

const STEPS: [&str; 4] = ["reserve", "charge", "invoice", "notify"];

/// The host in its own process, when this executable is started as one
/// (with [`HOST_CONFIG_VAR`]); as a test of the suite it does nothing.
#[test]
fn crash_host_process() {
    let Some(config) = std::env::var_os(HOST_CONFIG_VAR) else {
        return;
    };
    junction::serve::log_to_stderr(
        "warn,junction=info,junction_store=info,junction_runtime=info,junction_flows=info,junction_api=info",
    );
    let config = junction::config::Config::load(Some(Path::new(&config))).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // Runs until it is killed.
    runtime
        .block_on(junction::serve::run(&config, None, std::future::pending()))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_host_on_sqlite_loses_no_event_and_repeats_no_effect() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("junction.db").display().to_string();
    crash_test("sqlite", &database, dir.path(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_host_on_postgres_loses_no_event_and_repeats_no_effect() {
    let Some(database) = junction_tests::postgres::fresh_database("crash test on PostgreSQL").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    crash_test("postgres", &database, dir.path(), false).await;
    junction_tests::postgres::drop_database(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_postgres_one_sigkilled_lose_no_event_and_repeat_no_effect() {
    let Some(database) =
        junction_tests::postgres::fresh_database("two-host crash test on PostgreSQL").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    crash_test("postgres, two hosts", &database, dir.path(), true).await;
    junction_tests::postgres::drop_database(&database).await;
}

/// One variant at a time: each runs host processes and a feed of its own,
/// and two cores are not enough for three at once.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn crash_test(label: &str, database: &str, dir: &Path, two_hosts: bool) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let seed = std::env::var(SEED_VAR)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            u64::try_from(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
                    % (1 << 63),
            )
            .unwrap()
        });
    eprintln!("crash test ({label}): seed {seed} (replay with {SEED_VAR}={seed})");
    let ledger = LedgerStandin::start(LEDGER_LATENCY).await.unwrap();

    let mut victim = HostProcess::new("victim", database, dir);
    victim.start();
    victim.healthy().await;
    let api = Api::new(&victim.base);
    set_up(&api, &ledger).await;
    // A second host starts from the database once the plugin, the connection
    // and the flow are in it.
    let mut steady = two_hosts.then(|| {
        let mut steady = HostProcess::new("steady", database, dir);
        steady.start();
        steady
    });
    if let Some(steady) = steady.as_mut() {
        steady.healthy().await;
    }
    let mut targets = vec![victim.base.clone()];
    targets.extend(steady.iter().map(|h| h.base.clone()));

    let feed = Arc::new(Feed::new(targets));
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| tokio::spawn(feed.clone().deliver()))
        .collect();

    // Kill at random moments until the feed is done and there were enough kills.
    let mut rng = SplitMix(seed);
    let mut kills = 0;
    let mut kills_before_ready = 0;
    let mut restarts: Vec<Duration> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while kills < MIN_KILLS || !feed.done() {
        assert!(
            Instant::now() < deadline,
            "the feed did not finish: {} of {EVENTS} events delivered after {kills} kills",
            feed.finished.load(Ordering::SeqCst)
        );
        // Each life of the host releases its share of the events.
        feed.release((kills + 1) * EVENTS.div_ceil(MIN_KILLS));
        if rng.below(5) == 0 {
            // Sometimes while it is still starting: opening the store, restoring plugins.
            pause(Duration::from_millis(rng.below(60))).await;
            kills_before_ready += usize::from(!victim.answers().await);
        } else {
            victim.healthy().await;
            if kills > 0 {
                restarts.push(victim.started.elapsed());
            }
            pause(Duration::from_millis(50 + rng.below(950))).await;
        }
        victim.kill();
        kills += 1;
        victim.start();
    }
    for sender in senders {
        sender.await.unwrap();
    }
    victim.healthy().await;

    let runs = settled_runs(&api, feed.acknowledged()).await;
    let report = check(&api, &ledger, &feed, &runs).await;
    eprintln!(
        "crash test ({label}): seed {seed}, {kills} SIGKILLs ({kills_before_ready} before the host was ready; \
         a restart took {restart:?} on average), \
         {hosts} host process(es); {deliveries} deliveries, {acked} answered 2xx ({duplicates} of them as duplicates), \
         {retries} retried ({refused} refused connections or resets, {statuses} non-2xx answers); \
         runs by status {by_status:?}; steps attempted more than once: {reattempted}; \
         ledger: {effects} effects applied, {replays} replays absorbed by idempotency keys, \
         {overlaps} overlapping calls; {secs:.1} s",
        hosts = if two_hosts { 2 } else { 1 },
        restart = restarts.iter().sum::<Duration>() / u32::try_from(restarts.len().max(1)).unwrap(),
        deliveries = feed.deliveries.load(Ordering::SeqCst),
        acked = feed.acknowledged().len(),
        duplicates = feed.duplicates.load(Ordering::SeqCst),
        retries = feed.refused.load(Ordering::SeqCst) + feed.statuses.load(Ordering::SeqCst),
        refused = feed.refused.load(Ordering::SeqCst),
        statuses = feed.statuses.load(Ordering::SeqCst),
        by_status = report.by_status,
        reattempted = report.reattempted,
        effects = ledger.effects().len(),
        replays = ledger.counts().replays,
        overlaps = ledger.counts().overlaps,
        secs = started.elapsed().as_secs_f64(),
    );
    assert!(kills >= MIN_KILLS);
}

/// Waits `duration`: the random time a host lives before it is killed (not a
/// synchronisation; every wait for a state polls it).
async fn pause(duration: Duration) {
    tokio::time::sleep(duration).await;
}

/// The echo guest as a package: a connector that may reach loopback.
fn echo_package() -> Vec<u8> {
    let manifest = r#"[plugin]
name = "echo"
version = "0.1.0"
world = "connector"
wit = "junction:plugin@0.1.0"
description = "echo guest: webhooks in, HTTP out"
operations = ["noop", "echo", "version", "config", "kv", "fetch", "whoami", "env"]
triggers = []

[capabilities]
outbound_hosts = ["127.0.0.1"]
auth = "none"
kv = true
"#;
    Package::new(manifest, guests::bytes(guests::ECHO)).to_bytes()
}

/// A step that POSTs to the ledger; `method` and `body` are jq.
fn effect(ledger: &str, name: &str, method: &str, body: &str) -> String {
    format!(r#"{{url: "{ledger}/effects/{name}", method: {method}, body: ({body} | tojson)}}"#)
}

/// The flow: four keyed side effects, the first two compensated.
fn orders_flow(ledger: &str) -> String {
    let post = |name: &str, body: &str| effect(ledger, name, "\"POST\"", body);
    let after = |step: &str| {
        format!("{{event: .trigger.id, after: (.steps.{step}.body | fromjson | .seq)}}")
    };
    let undo = |step: &str| {
        post(
            &format!("{step}-undo"),
            "{event: .trigger.id, undoes: (.output.body | fromjson | .seq)}",
        )
    };
    let steps = [
        (
            "reserve",
            post("reserve", "{event: .trigger.id}"),
            Some(undo("reserve")),
        ),
        (
            "charge",
            post("charge", &after("reserve")),
            Some(undo("charge")),
        ),
        // The injected permanent error: for some events `method` is one the
        // connector refuses (invalid-input, not retried).
        (
            "invoice",
            effect(ledger, "invoice", ".trigger.data.method", &after("charge")),
            None,
        ),
        ("notify", post("notify", &after("invoice")), None),
    ];
    let mut flow = String::from(
        "description = \"order placed -> reserve, charge, invoice, notify\"\n\
         trigger = { type = \"event\", connection = \"shop\", event = \"order.placed\" }\n",
    );
    for (id, input, compensate) in steps {
        flow.push_str(&format!(
            "\n[[steps]]\nid = \"{id}\"\nconnection = \"shop\"\noperation = \"fetch\"\ninput = '{input}'\n\
             retry = {{ attempts = 10, backoff_ms = 20, max_backoff_ms = 500 }}\n"
        ));
        if let Some(undo) = compensate {
            flow.push_str(&format!(
                "compensate = {{ operation = \"fetch\", input = '{undo}' }}\n"
            ));
        }
    }
    flow
}

/// Loads the echo guest, connects it (webhooks signed as HubSpot v3 signs,
/// egress to the ledger) and deploys the flow, all through the API.
async fn set_up(api: &Api, ledger: &LedgerStandin) {
    let (status, body) = api
        .send(reqwest::Method::POST, "/v1/plugins", echo_package())
        .await;
    assert_eq!(status, 201, "{body}");
    let connection = json!({
        "plugin": "echo",
        "allowed_hosts": [ledger.host()],
        "private_hosts": [ledger.host()],
        "webhook": {"scheme": "hubspot_v3", "secret": WEBHOOK_SECRET},
    });
    let (status, body) = api
        .send(
            reqwest::Method::PUT,
            "/v1/connections/shop",
            connection.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = api
        .send(
            reqwest::Method::PUT,
            "/v1/flows/orders",
            orders_flow(&ledger.base_url()).into_bytes(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// One host process over the shared database, on a port of its own that it
/// keeps across restarts.
struct HostProcess {
    name: &'static str,
    base: String,
    config: PathBuf,
    logs: PathBuf,
    lives: usize,
    started: Instant,
    child: Option<Child>,
    client: reqwest::Client,
}

impl HostProcess {
    fn new(name: &'static str, database: &str, dir: &Path) -> HostProcess {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Compiled code survives the test, so later runs do not compile again.
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("crash-compile-cache");
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                r#"listen = "127.0.0.1:{port}"
database = {database:?}
cache_dir = {cache:?}
secret_key = "{SECRET_KEY}"

[limits]
deadline_ms = 1500

[flows]
workers = 2
lease_ms = 500
idle_poll_ms = 100

[tokens.admin]
token = "{ADMIN}"
scope = "admin"
"#
            ),
        )
        .unwrap();
        HostProcess {
            name,
            base: format!("http://127.0.0.1:{port}"),
            config,
            logs: dir.to_path_buf(),
            lives: 0,
            started: Instant::now(),
            child: None,
            client: reqwest::Client::new(),
        }
    }

    fn log(&self) -> PathBuf {
        self.logs.join(format!("{}-{}.log", self.name, self.lives))
    }

    fn start(&mut self) {
        self.lives += 1;
        let log = File::create(self.log()).unwrap();
        let mut command = Command::new(std::env::current_exe().unwrap());
        // The configuration file is the whole configuration: no `JUNCTION_*`
        // override from the test's environment (but the log filter).
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("JUNCTION_") && name != "JUNCTION_LOG" {
                command.env_remove(name);
            }
        }
        let child = command
            .args([
                "crash_host_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HOST_CONFIG_VAR, &self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.started = Instant::now();
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    async fn answers(&self) -> bool {
        self.client
            .get(format!("{}/healthz", self.base))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// Polls until the host answers; panics with its log when it exited or
    /// did not come up within a minute.
    async fn healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.answers().await {
                return;
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().unwrap());
            let log = || std::fs::read_to_string(self.log()).unwrap_or_default();
            assert!(
                exited.is_none(),
                "host {} (life {}) exited with {exited:?}:\n{}",
                self.name,
                self.lives,
                log()
            );
            assert!(
                Instant::now() < deadline,
                "host {} (life {}) did not become healthy:\n{}",
                self.name,
                self.lives,
                log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The API as an operator's client sees it.
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn new(base: &str) -> Api {
        Api {
            base: base.to_string(),
            client: reqwest::Client::new(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send(reqwest::Method::GET, path, Vec::new()).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
}

/// The webhook source: events released in batches, each delivered until a
/// 2xx, to the hosts in turn.
struct Feed {
    targets: Vec<String>,
    client: reqwest::Client,
    released: AtomicUsize,
    next: AtomicUsize,
    finished: AtomicUsize,
    deliveries: AtomicU64,
    refused: AtomicU64,
    statuses: AtomicU64,
    duplicates: AtomicU64,
    /// Event id -> the run the 2xx answer named.
    acked: Mutex<BTreeMap<String, String>>,
}

impl Feed {
    fn new(targets: Vec<String>) -> Feed {
        Feed {
            targets,
            // No pooled connections: a pooled one to a killed host would only fail.
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            released: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            deliveries: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            statuses: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            acked: Mutex::new(BTreeMap::new()),
        }
    }

    fn release(&self, up_to: usize) {
        self.released.fetch_max(up_to.min(EVENTS), Ordering::SeqCst);
    }

    fn done(&self) -> bool {
        self.finished.load(Ordering::SeqCst) == EVENTS
    }

    fn acknowledged(&self) -> BTreeMap<String, String> {
        self.acked.lock().unwrap().clone()
    }

    /// One sender: takes the next released event and delivers it.
    async fn deliver(self: Arc<Self>) {
        loop {
            let n = self.next.fetch_add(1, Ordering::SeqCst);
            if n >= EVENTS {
                return;
            }
            while n >= self.released.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            self.deliver_one(n).await;
            self.finished.fetch_add(1, Ordering::SeqCst);
        }
    }

    async fn deliver_one(&self, n: usize) {
        let id = event_id(n);
        let poisoned = n % POISON_EVERY == POISON_AT;
        let body = json!({
            "id": id,
            "type": "order.placed",
            "subject": format!("order-{n}"),
            "n": n,
            "method": if poisoned { "REFUSE" } else { "POST" },
        })
        .to_string();
        let mut backoff = Duration::from_millis(20);
        for attempt in 0.. {
            let url = format!(
                "{}/v1/webhooks/shop",
                self.targets[(n + attempt) % self.targets.len()]
            );
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis()
                .to_string();
            let signature = sign_v3(WEBHOOK_SECRET, "POST", &url, body.as_bytes(), &timestamp);
            self.deliveries.fetch_add(1, Ordering::SeqCst);
            let sent = self
                .client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-hubspot-signature-v3", signature)
                .header("x-hubspot-request-timestamp", timestamp)
                .body(body.clone())
                .send()
                .await;
            let answer = match sent {
                Ok(response) if response.status().is_success() => response.json::<Value>().await,
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    // A host going down mid-answer is expected; a refusal of a good request is not.
                    assert!(status.is_server_error(), "event {id}: {status} {text}");
                    self.statuses.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(300));
                    continue;
                }
                Err(e) => Err(e),
            };
            match answer {
                Ok(answer) => {
                    let runs = answer["runs"].as_array().cloned().unwrap_or_default();
                    assert_eq!(runs.len(), 1, "event {id}: {answer}");
                    if runs[0]["duplicate"] == true {
                        self.duplicates.fetch_add(1, Ordering::SeqCst);
                    }
                    let run = runs[0]["run"].as_str().unwrap().to_string();
                    self.acked.lock().unwrap().insert(id, run);
                    return;
                }
                Err(_) => {
                    self.refused.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(300));
                }
            }
        }
    }
}

fn event_id(n: usize) -> String {
    format!("evt-{n:04}")
}

/// Polls `GET /v1/runs` until every acknowledged event's run has ended.
async fn settled_runs(api: &Api, acked: BTreeMap<String, String>) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let runs = api.get("/v1/runs?flow=orders&limit=1000").await["runs"]
            .as_array()
            .cloned()
            .unwrap();
        let ended = runs
            .iter()
            .filter(|r| {
                ["completed", "compensated", "failed"].contains(&r["status"].as_str().unwrap())
            })
            .count();
        if runs.len() >= acked.len() && ended == runs.len() {
            return runs;
        }
        let pending: Vec<String> = runs
            .iter()
            .filter(|r| {
                !["completed", "compensated", "failed"].contains(&r["status"].as_str().unwrap())
            })
            .map(|r| format!("{} {}", r["id"], r["status"]))
            .take(10)
            .collect();
        assert!(
            Instant::now() < deadline,
            "runs did not settle: {} runs for {} acknowledged events, {ended} ended; unsettled: {pending:?}",
            runs.len(),
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the final checks counted.
struct Report {
    by_status: BTreeMap<String, usize>,
    reattempted: usize,
}

/// Every assertion of the test, on the runs, the dead letters and the ledger.
async fn check(api: &Api, ledger: &LedgerStandin, feed: &Feed, runs: &[Value]) -> Report {
    let acked = feed.acknowledged();
    assert_eq!(
        acked.len(),
        EVENTS,
        "every event was eventually acknowledged"
    );

    // Exactly one run per acknowledged event, the one its answer named.
    let mut run_of_event: HashMap<String, &Value> = HashMap::new();
    for run in runs {
        let event = run["trigger"]["id"].as_str().unwrap().to_string();
        if let Some(other) = run_of_event.insert(event.clone(), run) {
            panic!(
                "event {event} has two runs: {} and {}",
                other["id"], run["id"]
            );
        }
    }
    assert_eq!(
        runs.len(),
        acked.len(),
        "one run per acknowledged event, no more"
    );
    for (event, run) in &acked {
        let found = run_of_event
            .get(event)
            .unwrap_or_else(|| panic!("event {event} was acknowledged but has no run"));
        assert_eq!(
            found["id"],
            run.as_str(),
            "event {event}: the answer named another run"
        );
    }

    // Completed, or compensated and dead-lettered for exactly the injected events.
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let poisoned: BTreeSet<String> = (0..EVENTS)
        .filter(|n| n % POISON_EVERY == POISON_AT)
        .map(event_id)
        .collect();
    for (event, run) in &run_of_event {
        let status = run["status"].as_str().unwrap();
        *by_status.entry(status.to_string()).or_default() += 1;
        if poisoned.contains(event) {
            assert_eq!(status, "compensated", "event {event}: {run:#}");
            assert_eq!(run["failed_step"], "invoice", "event {event}: {run:#}");
        } else {
            assert_eq!(status, "completed", "event {event}: {run:#}");
        }
    }
    let letters = api.get("/v1/dead-letters?flow=orders").await["dead_letters"]
        .as_array()
        .cloned()
        .unwrap();
    let lettered: BTreeSet<String> = letters
        .iter()
        .map(|l| {
            assert_eq!(l["step"], "invoice", "{l:#}");
            assert!(
                l["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["kind"] == "invalid_input"),
                "{l:#}"
            );
            l["run_id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(letters.len(), lettered.len(), "one dead letter per run");
    let poisoned_runs: BTreeSet<String> = poisoned.iter().map(|e| acked[e].clone()).collect();
    assert_eq!(
        lettered, poisoned_runs,
        "dead letters are exactly the injected runs"
    );

    // The ledger: each effect under the key of its run and step, once; every
    // run's effects complete; compensations in reverse order.
    let counts = ledger.counts();
    assert_eq!(
        counts.overlaps, 0,
        "a keyed call arrived while the same key was in flight"
    );
    assert_eq!(
        counts.refused,
        0,
        "the ledger refused a call: {:?}",
        ledger.requests().last()
    );
    let runs_by_id: HashMap<&str, &Value> = runs
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r))
        .collect();
    let mut applied: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for effect in ledger.effects() {
        let (run_id, rest) = effect
            .key
            .split_once(':')
            .unwrap_or_else(|| panic!("{effect:?}"));
        let run = runs_by_id
            .get(run_id)
            .unwrap_or_else(|| panic!("effect {effect:?} carries the key of no run"));
        let expected_name = match rest.strip_suffix(":compensate") {
            Some(step) => format!("{step}-undo"),
            None => rest.to_string(),
        };
        assert_eq!(effect.name, expected_name, "{effect:?}");
        assert_eq!(effect.body["event"], run["trigger"]["id"], "{effect:?}");
        applied
            .entry((run_id.to_string(), effect.name.clone()))
            .or_default()
            .push(effect.seq);
    }
    for ((run, name), seqs) in &applied {
        assert_eq!(
            seqs.len(),
            1,
            "run {run}: {name} applied {} times",
            seqs.len()
        );
    }
    for run in runs {
        let id = run["id"].as_str().unwrap();
        // Sorted: the map's keys are (run, name).
        let names: Vec<&str> = applied
            .keys()
            .filter(|(r, _)| r == id)
            .map(|(_, name)| name.as_str())
            .collect();
        let seq = |name: &str| applied[&(id.to_string(), name.to_string())][0];
        if run["status"] == "completed" {
            assert_eq!(
                names,
                ["charge", "invoice", "notify", "reserve"],
                "run {id}"
            );
            assert!(
                seq("reserve") < seq("charge") && seq("invoice") < seq("notify"),
                "run {id}"
            );
        } else {
            assert_eq!(
                names,
                ["charge", "charge-undo", "reserve", "reserve-undo"],
                "run {id}"
            );
            assert!(
                seq("charge-undo") < seq("reserve-undo"),
                "run {id}: compensated out of order"
            );
        }
    }

    // How often a step was attempted again after a kill (the replays' source).
    let mut reattempted = 0;
    for run in runs {
        let detail = api
            .get(&format!("/v1/runs/{}", run["id"].as_str().unwrap()))
            .await;
        for step in detail["steps"].as_array().unwrap() {
            assert!(STEPS.contains(&step["id"].as_str().unwrap()));
            if step["attempts"].as_i64().unwrap() > 1 {
                reattempted += 1;
            }
        }
    }
    Report {
        by_status,
        reattempted,
    }
}

/// SplitMix64: a small seeded generator for the kill times.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..bound` for choosing moments.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}
