//! The operator console in a real headless Chromium, driven through
//! chromedriver's WebDriver: sign-in, the estate on every page at 1280 and
//! 390 px (screenshots in the test's output directory), a dead letter
//! corrected in the editor and replayed, a plugin version activated and
//! rolled back, a read token's console without write controls, CSRF, and
//! sign-out. Every page is checked for errors of its scripts.
//!
//! Chromium and chromedriver come from Debian's `chromium` and
//! `chromium-driver` (`.ci/run` installs them); without them the tests say
//! so on stderr and skip. `JUNCTION_TEST_CHROMEDRIVER` and
//! `JUNCTION_TEST_CHROMIUM` name other binaries.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use junction_tests::echo_package;
use junction_tests::eventually;
use junction_tests::shipped_host::{self, ADMIN, Host, VIEWER};
use serde_json::{Value, json};

const WIDTHS: [(u32, u32); 2] = [(1280, 900), (390, 844)];
const WAIT: Duration = Duration::from_secs(30);

/// A headless Chromium behind its own chromedriver.
struct Browser {
    client: Client,
    driver: Child,
    shots: PathBuf,
}

fn binary(var: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(var) {
        return Some(path.into());
    }
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

impl Browser {
    /// A browser, or `None` (said on stderr) when Chromium or its driver is missing.
    async fn start(test: &str) -> Option<Browser> {
        let driver = binary(
            "JUNCTION_TEST_CHROMEDRIVER",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
        );
        let chromium = binary(
            "JUNCTION_TEST_CHROMIUM",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
        );
        let (Some(driver), Some(chromium)) = (driver, chromium) else {
            eprintln!(
                "\n*** SKIPPED {test}: no chromium and chromedriver (apt-get install chromium \
                 chromium-driver, or set JUNCTION_TEST_CHROMIUM / JUNCTION_TEST_CHROMEDRIVER) ***\n"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let status = reqwest::Client::new();
        eventually(
            "chromedriver answers",
            WAIT,
            Duration::from_millis(50),
            || async {
                match status.get(format!("{url}/status")).send().await {
                    Ok(answer) if answer.status().is_success() => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"],
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a WebDriver session");
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("console-screenshots")
            .join(test);
        std::fs::create_dir_all(&shots).unwrap();
        Some(Browser {
            client,
            driver,
            shots,
        })
    }

    async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no `{selector}` on the page: {e}"))
    }

    async fn count(&self, selector: &str) -> usize {
        self.client
            .find_all(Locator::Css(selector))
            .await
            .unwrap()
            .len()
    }

    /// Goes to `hash` of the console and waits until the page has loaded.
    async fn open(&self, hash: &str) {
        self.client
            .execute(
                "const main = document.getElementById('main'); \
                 if (main) main.dataset.loaded = 'false'; location.hash = arguments[0];",
                vec![json!(hash)],
            )
            .await
            .unwrap();
        self.css("main[data-loaded='true']").await;
    }

    /// Screenshots of the page at both widths, as `<name>-<width>.png`.
    async fn shoot(&self, name: &str) {
        for (width, height) in WIDTHS {
            self.client.set_window_size(width, height).await.unwrap();
            // The page has laid itself out again when its width is the window's.
            let inner = self
                .client
                .execute("return window.innerWidth", vec![])
                .await
                .unwrap();
            assert!(inner.as_u64().is_some(), "{inner}");
            let overflow = self
                .client
                .execute(
                    "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
                    vec![],
                )
                .await
                .unwrap();
            assert!(
                overflow.as_i64().unwrap_or(0) <= 1,
                "page `{name}` scrolls sideways at {width} px by {overflow} px"
            );
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(self.shots.join(format!("{name}-{width}.png")), png).unwrap();
        }
        self.client.set_window_size(1280, 900).await.unwrap();
    }

    /// Fetches `path` from the page with `method` and the session's cookie,
    /// with its CSRF token when `csrf`; returns the status.
    async fn fetch_status(&self, method: &str, path: &str, csrf: bool) -> u64 {
        let status = self
            .client
            .execute_async(
                "const [method, path, csrf, done] = arguments; \
                 (async () => { \
                   const headers = {}; \
                   if (csrf) { \
                     const s = await fetch('/console/session', {credentials: 'same-origin'}); \
                     headers['X-CSRF-Token'] = (await s.json()).csrf; \
                   } \
                   const r = await fetch(path, {method, headers, credentials: 'same-origin'}); \
                   done(r.status); \
                 })().catch(e => done(String(e)));",
                vec![json!(method), json!(path), json!(csrf)],
            )
            .await
            .unwrap();
        status
            .as_u64()
            .unwrap_or_else(|| panic!("fetch failed: {status}"))
    }

    /// The errors the page's scripts logged (a failed request's status is
    /// the browser's own line, not the script's, and is left out).
    async fn script_errors(&self) -> Vec<String> {
        let log = self.client.issue_cmd(BrowserLog).await.unwrap();
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .filter_map(|entry| entry["message"].as_str())
            .filter(|m| !m.contains("Failed to load resource"))
            .map(str::to_string)
            .collect()
    }

    async fn assert_no_script_errors(&self, page: &str) {
        let errors = self.script_errors().await;
        assert!(
            errors.is_empty(),
            "page `{page}` logged errors: {errors:#?}"
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// chromedriver's log of the browser's console since the last read.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// A flow whose one step fails for good on a bad Jira key, and the dead
/// letter its run leaves; returns (run, dead letter).
async fn dead_letter(host: &Host) -> (String, String) {
    host.call_toml(
        "/v1/flows/console-fixable",
        r#"trigger = { type = "manual" }

[[steps]]
id = "project"
connection = "jira"
operation = "create-project"
input = '{key: .trigger.key, name: "From the console"}'
"#,
    )
    .await;
    let started = host
        .call(
            "POST",
            "/v1/flows/console-fixable/runs",
            Some(json!({"key": "bad key"})),
        )
        .await;
    let run = started["run"].as_str().unwrap().to_string();
    let failed = host.finished(&run).await;
    assert_eq!(failed["status"], "failed", "{failed:#}");
    let letters = host
        .call("GET", "/v1/dead-letters?flow=console-fixable", None)
        .await;
    let id = letters["dead_letters"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    (run, id)
}

async fn upload(host: &Host, version: &str) {
    let answer = host
        .http
        .post(format!("{}/v1/plugins", host.base))
        .bearer_auth(ADMIN)
        .header("content-type", "application/octet-stream")
        .body(echo_package(version).to_bytes())
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{:?}", answer.text().await);
}

async fn active_echo(host: &Host) -> Value {
    host.call("GET", "/v1/plugins/echo", None).await["active"].clone()
}

async fn sign_in(browser: &Browser, host: &Host, token: &str) {
    browser
        .client
        .goto(&format!("{}/console/", host.base))
        .await
        .unwrap();
    browser.css("#token").await.send_keys(token).await.unwrap();
    browser.css("#sign-in-button").await.click().await.unwrap();
    browser.css("main[data-loaded='true']").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_replays_a_corrected_dead_letter_and_swaps_a_plugin_version_in_the_console() {
    let Some(browser) = Browser::start("operator").await else {
        return;
    };
    let host = shipped_host::host().await;
    let deal = host.deal_won().await;
    let done = host.finished(&deal).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    let (run, letter) = dead_letter(&host).await;
    upload(&host, "0.1.0").await;

    // A wrong token is refused in words; the right one signs in.
    browser
        .client
        .goto(&format!("{}/console/", host.base))
        .await
        .unwrap();
    browser
        .css("#token")
        .await
        .send_keys("not-a-token-at-all")
        .await
        .unwrap();
    browser.css("#sign-in-button").await.click().await.unwrap();
    let refused = browser.css("#sign-in-error").await;
    eventually(
        "the refusal is shown",
        WAIT,
        Duration::from_millis(50),
        || async {
            let text = refused.text().await.unwrap();
            if text.contains("token") {
                Ok(())
            } else {
                Err(text)
            }
        },
    )
    .await;
    browser.shoot("sign-in").await;
    browser.css("#token").await.clear().await.unwrap();
    sign_in(&browser, &host, ADMIN).await;
    let cookie = browser
        .client
        .get_named_cookie("junction_session")
        .await
        .unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    let whoami = browser.css("#whoami").await.text().await.unwrap();
    assert!(whoami.contains("admin"), "{whoami}");

    // The overview: the demo's run and the KPIs.
    browser.open("#/").await;
    browser.css(&format!("[data-run='{deal}']")).await;
    assert!(
        browser.count(".kpi[data-kpi]").await >= 1,
        "no KPI on the overview"
    );
    assert!(
        browser.count("main svg").await >= 1,
        "no chart on the overview"
    );
    browser.shoot("overview").await;

    // A run's steps as a timeline, with its trace id.
    browser.open(&format!("#/runs/{deal}")).await;
    let steps = done["steps"].as_array().unwrap();
    for step in steps {
        let id = step["id"].as_str().unwrap();
        browser
            .css(&format!(
                ".step[data-step='{id}'][data-status='{}']",
                step["status"].as_str().unwrap()
            ))
            .await;
    }
    let trace = browser.css("#trace-id").await.text().await.unwrap();
    assert_eq!(trace.trim(), done["trace_id"].as_str().unwrap());
    browser.shoot("run").await;

    // An invalid correction is refused in the page: nothing is sent.
    browser.open(&format!("#/dead-letters/{letter}")).await;
    let editor = browser.css("#dl-input").await;
    editor.clear().await.unwrap();
    editor.send_keys(r#"{"name": "no key"}"#).await.unwrap();
    let error = browser.css("#dl-error").await;
    eventually(
        "the editor says what is wrong",
        WAIT,
        Duration::from_millis(50),
        || async {
            let text = error.text().await.unwrap();
            if text.contains("key") {
                Ok(())
            } else {
                Err(text)
            }
        },
    )
    .await;
    let replay = browser.css("#replay").await;
    assert!(
        !replay.is_enabled().await.unwrap(),
        "replay is enabled with an invalid input"
    );
    browser
        .client
        .execute(
            "document.getElementById('replay').closest('form')?.requestSubmit()",
            vec![],
        )
        .await
        .unwrap();
    browser.shoot("dead-letter").await;
    let open = host
        .call("GET", "/v1/dead-letters?flow=console-fixable", None)
        .await;
    assert_eq!(
        open["dead_letters"][0]["id"],
        letter.as_str(),
        "the dead letter is still open"
    );
    let replays = host.call("GET", "/v1/audit?action=run.replay", None).await;
    assert_eq!(
        replays["entries"].as_array().unwrap().len(),
        0,
        "{replays:#}"
    );

    // A valid correction replays, and the run completes.
    editor.clear().await.unwrap();
    editor
        .send_keys(r#"{"key": "CONSOLE", "name": "From the console"}"#)
        .await
        .unwrap();
    eventually(
        "the editor accepts it",
        WAIT,
        Duration::from_millis(50),
        || async {
            if replay.is_enabled().await.unwrap() {
                Ok(())
            } else {
                Err(error.text().await.unwrap())
            }
        },
    )
    .await;
    replay.click().await.unwrap();
    browser
        .css(".step[data-step='project'][data-status='completed']")
        .await;
    let replayed = host.finished(&run).await;
    assert_eq!(replayed["status"], "completed", "{replayed:#}");
    assert!(
        host.estate
            .jira
            .projects()
            .iter()
            .any(|p| p["key"] == "CONSOLE"),
        "the corrected project reached Jira"
    );

    // A plugin version uploaded in the page, activated, and rolled back,
    // each after a confirmation that names what changes.
    let package = browser.shots.join("echo-0.2.0.junction");
    std::fs::write(&package, echo_package("0.2.0").to_bytes()).unwrap();
    browser.open("#/plugins/echo").await;
    browser
        .css("#upload-file")
        .await
        .send_keys(package.to_str().unwrap())
        .await
        .unwrap();
    browser.css("#upload-button").await.click().await.unwrap();
    browser
        .css("[data-version='0.2.0'] [data-action='activate']")
        .await
        .click()
        .await
        .unwrap();
    let confirm = browser.css("dialog#confirm[open]").await;
    let says = confirm.text().await.unwrap();
    assert!(
        says.contains("0.2.0") && says.contains("0.1.0"),
        "the confirmation says: {says}"
    );
    browser.shoot("plugin-confirm").await;
    browser.css("#confirm-yes").await.click().await.unwrap();
    eventually(
        "0.2.0 is active",
        WAIT,
        Duration::from_millis(50),
        || async {
            let active = active_echo(&host).await;
            if active == "0.2.0" {
                Ok(())
            } else {
                Err(active.to_string())
            }
        },
    )
    .await;
    browser
        .css("[data-action='rollback']")
        .await
        .click()
        .await
        .unwrap();
    let says = browser
        .css("dialog#confirm[open]")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        says.contains("from 0.2.0 to 0.1.0"),
        "the confirmation says: {says}"
    );
    browser.css("#confirm-yes").await.click().await.unwrap();
    eventually(
        "0.1.0 is active again",
        WAIT,
        Duration::from_millis(50),
        || async {
            let active = active_echo(&host).await;
            if active == "0.1.0" {
                Ok(())
            } else {
                Err(active.to_string())
            }
        },
    )
    .await;
    browser.open("#/plugins/echo").await;
    browser.shoot("plugin").await;

    // A connection checked from its page shows the check's outcome.
    browser.open("#/connections/jira").await;
    browser
        .css("[data-action='check']")
        .await
        .click()
        .await
        .unwrap();
    eventually(
        "the connection page shows a passed check",
        WAIT,
        Duration::from_millis(100),
        || async {
            if browser.count(".last-check .status-passed").await > 0 {
                Ok(())
            } else {
                Err(browser.css("main").await.text().await.unwrap())
            }
        },
    )
    .await;

    // Every list page, at both widths, without a script error.
    for (hash, name) in [
        ("#/plugins", "plugins"),
        ("#/connections", "connections"),
        ("#/connections/jira", "connection"),
        ("#/flows", "flows"),
        ("#/flows/closed-won-to-project", "flow"),
        ("#/runs", "runs"),
        ("#/dead-letters", "dead-letters"),
        ("#/audit", "audit"),
    ] {
        browser.open(hash).await;
        browser.shoot(name).await;
        browser.assert_no_script_errors(name).await;
    }

    // A change without the session's CSRF token is refused.
    assert_eq!(
        browser
            .fetch_status("POST", "/v1/plugins/echo/rollback", false)
            .await,
        403
    );
    assert_eq!(active_echo(&host).await, "0.1.0");

    // Sign-out ends the session on the server, not only in the page.
    browser.css("#sign-out").await.click().await.unwrap();
    browser.css("#sign-in").await;
    let after = host
        .http
        .get(format!("{}/v1/runs", host.base))
        .header("cookie", format!("junction_session={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401, "the old cookie still works");
    browser.assert_no_script_errors("sign-out").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_token_sees_no_write_controls_and_its_forged_change_is_refused() {
    let Some(browser) = Browser::start("viewer").await else {
        return;
    };
    let host = shipped_host::host().await;
    let (_, letter) = dead_letter(&host).await;
    upload(&host, "0.1.0").await;
    upload(&host, "0.2.0").await;

    // A one-time link signs its opener in, once.
    let url = host.console_link(VIEWER).await;
    browser.client.goto(&url).await.unwrap();
    browser.css("main[data-loaded='true']").await;
    let whoami = browser.css("#whoami").await.text().await.unwrap();
    assert!(
        whoami.contains("viewer") && whoami.contains("read"),
        "{whoami}"
    );

    for (hash, name) in [
        ("#/", "overview"),
        ("#/plugins", "plugins"),
        ("#/plugins/echo", "plugin"),
        ("#/connections", "connections"),
        ("#/connections/jira", "connection"),
        ("#/flows", "flows"),
        ("#/flows/console-fixable", "flow"),
        ("#/runs", "runs"),
        ("#/dead-letters", "dead-letters"),
        (&format!("#/dead-letters/{letter}"), "dead-letter"),
        ("#/audit", "audit"),
    ] {
        browser.open(hash).await;
        let controls = browser.count(".write, [data-action]").await;
        assert_eq!(
            controls, 0,
            "a read session sees {controls} write controls on `{name}`"
        );
        browser.shoot(name).await;
        browser.assert_no_script_errors(name).await;
    }

    // Its forged change, with the session's own CSRF token, is refused by scope.
    assert_eq!(
        browser
            .fetch_status("POST", "/v1/plugins/echo/rollback", true)
            .await,
        403
    );
    assert_eq!(active_echo(&host).await, "0.1.0");

    // The link was spent.
    browser.css("#sign-out").await.click().await.unwrap();
    browser.css("#sign-in").await;
    browser.client.goto(&url).await.unwrap();
    browser.css("#sign-in").await;
    assert_eq!(
        browser.fetch_status("GET", "/console/session", false).await,
        401
    );
}
