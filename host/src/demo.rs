//! `junction demo`: the host on its embedded defaults, a Jira Cloud stand-in
//! on loopback, the shipped plugins, and a closed-won HubSpot deal turned
//! into a Jira project with a kickoff issue, all through the HTTP API.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, bail};
use junction_standins::JiraStandin;
use serde_json::{Value, json};

use crate::config::{Config, Scope, Token};
use crate::runtime::Runtime;
use crate::{api, shipped};

/// What the demo created, for callers that check it.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Key of the Jira project created.
    pub project_key: String,
    /// Key of the kickoff issue created.
    pub issue_key: String,
}

const JIRA_EMAIL: &str = "demo@junction.example";
const JIRA_TOKEN: &str = "demo-jira-api-token";

/// A closed-won deal as HubSpot's CRM v3 API returns it.
fn sample_deal() -> Value {
    json!({
        "id": "9876543210",
        "properties": {
            "dealname": "Acme Rollout",
            "amount": "120000",
            "closedate": "2026-11-20T00:00:00.000Z",
            "dealstage": "closedwon",
            "pipeline": "default",
            "deal_currency_code": "USD",
            "hs_object_id": "9876543210"
        },
        "createdAt": "2026-10-01T09:00:00.000Z",
        "updatedAt": "2026-11-20T16:30:00.000Z",
        "archived": false
    })
}

/// Runs the demo and prints what happened in each system. With
/// `keep_running` the host stays up afterwards until Ctrl-C.
pub async fn run(keep_running: bool) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    let data = tempfile::Builder::new()
        .prefix("junction-demo-")
        .tempdir()
        .context("creating a data directory")?;
    let token = format!("demo-{}", uuid::Uuid::new_v4().simple());
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        database: Some(data.path().join("junction.db")),
        cache_dir: Some(data.path().join("cache")),
        tokens: BTreeMap::from([(
            "demo".to_string(),
            Token {
                token: token.clone(),
                scope: Scope::Admin,
            },
        )]),
        ..Config::default()
    };

    step("starting the Jira Cloud stand-in on loopback");
    let jira = JiraStandin::start(JIRA_EMAIL, JIRA_TOKEN).await?;
    done(&jira.base_url());

    step("opening the store (SQLite, WAL, synchronous=FULL)");
    let runtime = Runtime::open(&config).await?;
    done(&data.path().join("junction.db").display().to_string());

    for package in shipped::packages() {
        let t = Instant::now();
        step("uploading a shipped plugin package");
        let up = runtime.upload_package(&package.to_bytes(), "demo").await?;
        done(&format!(
            "{}@{} ({}, {} ms)",
            up.name,
            up.version,
            &up.digest[..19],
            t.elapsed().as_millis()
        ));
    }

    step("starting the HTTP API");
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = api::router(runtime.clone(), &config);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    done(&base);

    let client = Client {
        http: reqwest::Client::new(),
        base: base.clone(),
        token,
    };

    step("PUT /v1/connections/jira (basic auth held by the host)");
    client
        .send(
            reqwest::Method::PUT,
            "/v1/connections/jira",
            json!({
                "plugin": "jira",
                "config": {"base_url": jira.base_url()},
                "auth": {"type": "basic", "username": JIRA_EMAIL, "password": JIRA_TOKEN},
                "allowed_hosts": [jira.host()], "private_hosts": [jira.host()],
            }),
        )
        .await?;
    done("created");

    step("POST /v1/connections/jira/check");
    client
        .send(
            reqwest::Method::POST,
            "/v1/connections/jira/check",
            json!({}),
        )
        .await?;
    done("Jira answered /rest/api/3/myself");

    step("HubSpot deal closed-won -> canonical project (transform)");
    let applied = client
        .send(
            reqwest::Method::POST,
            "/v1/transforms/hubspot-deal-to-project/apply",
            sample_deal(),
        )
        .await?;
    let project = applied["outputs"]
        .get(0)
        .cloned()
        .context("the transform produced no project for a closed-won deal")?;
    let key = project["key"]
        .as_str()
        .context("the canonical project has no key")?
        .to_string();
    let name = project["name"]
        .as_str()
        .context("the canonical project has no name")?
        .to_string();
    done(&format!("{name} ({key})"));

    step("Jira: create-project");
    let created = client
        .send(
            reqwest::Method::POST,
            "/v1/connections/jira/operations/create-project",
            json!({"key": key, "name": name}),
        )
        .await?;
    let project_key = created["key"]
        .as_str()
        .context("create-project returned no key")?
        .to_string();
    done(&format!(
        "project {project_key} (id {})",
        created["id"].as_str().unwrap_or("?")
    ));

    step("Jira: create-issue (kickoff)");
    let description = format!(
        "Kickoff for {name}. Budget: {} {}. Start: {}. HubSpot deal {}.",
        project["budget"]["amount"],
        project["budget"]["currency"].as_str().unwrap_or("USD"),
        project["start_date"].as_str().unwrap_or("tbd"),
        project["external_ids"]["hubspot"].as_str().unwrap_or("?"),
    );
    let issue = client
        .send(
            reqwest::Method::POST,
            "/v1/connections/jira/operations/create-issue",
            json!({
                "project_key": project_key,
                "summary": format!("Kickoff: {name}"),
                "description": description,
            }),
        )
        .await?;
    let issue_key = issue["key"]
        .as_str()
        .context("create-issue returned no key")?
        .to_string();
    done(&issue_key);

    step("Jira: get-issue");
    let fetched = client
        .send(
            reqwest::Method::POST,
            "/v1/connections/jira/operations/get-issue",
            json!({"key": issue_key}),
        )
        .await?;
    done(&format!(
        "{} [{}]",
        fetched["summary"].as_str().unwrap_or("?"),
        fetched["status"].as_str().unwrap_or("?")
    ));

    let auth_ok = jira.requests().iter().all(|r| {
        r.headers
            .iter()
            .any(|(k, v)| k == "authorization" && v.starts_with("Basic "))
    });
    println!();
    println!("What happened");
    println!("  HubSpot  deal 9876543210 \"Acme Rollout\" closed-won (sample webhook payload)");
    println!(
        "  Jira     project {project_key} \"{name}\" created; issue {issue_key} \"Kickoff: {name}\""
    );
    println!(
        "  Jira     stand-in holds {} project(s), {} issue(s); {} request(s), credentials added by the host: {}",
        jira.projects().len(),
        jira.issues().len(),
        jira.requests().len(),
        if auth_ok { "yes" } else { "NO" }
    );
    println!();
    println!("Where to look");
    println!(
        "  API       {base}/v1/plugins  (Authorization: Bearer {})",
        client.token
    );
    println!("  health    {base}/healthz");
    println!(
        "  Jira      {}/rest/api/3/project/{project_key}",
        jira.base_url()
    );
    println!();
    println!("Created Jira project: {project_key}");
    println!("demo finished in {:.1} s", started.elapsed().as_secs_f64());
    if !auth_ok {
        bail!("a request reached Jira without the host-injected credentials");
    }

    if keep_running {
        println!("serving until Ctrl-C ...");
        tokio::signal::ctrl_c().await?;
    }
    server.abort();
    Ok(DemoReport {
        project_key,
        issue_key,
    })
}

fn step(what: &str) {
    use std::io::Write as _;
    print!("  .. {what} ");
    let _ = std::io::stdout().flush();
}

fn done(result: &str) {
    println!("-> {result}");
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let response = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {text}");
        }
        serde_json::from_str(&text)
            .with_context(|| format!("{method} {path} answered non-JSON: {text}"))
    }
}
