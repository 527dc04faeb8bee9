//! `junction demo`: the quote-to-project story on the embedded defaults.
//!
//! SaaS stand-ins on loopback (HubSpot, NetSuite, a PSA, Jira Cloud and a
//! contract tool), the host on SQLite with the shipped plugins and flows,
//! everything driven through the HTTP API as an operator and the SaaS tools
//! would drive it:
//!
//! 1. A HubSpot deal moves to closed-won; HubSpot's signed webhook starts
//!    `closed-won-to-project`: NetSuite customer and job, PSA project with
//!    its roles, Jira project and kickoff issue, a staffing plan made by the
//!    resource optimizer and booked as PSA assignments.
//! 2. While the host keeps serving, the contract-tool connector is uploaded
//!    (hot-loaded: no restart), connected, and `contract-signed-activates-project`
//!    deployed; the customer signs the contract, the contract tool's signed
//!    webhook arrives, and the PSA project becomes active.
//!
//! It prints each system's resulting records and the run summaries.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use junction_standins::psa::NewPerson;
use junction_standins::{
    ContractStandin, HubspotStandin, JiraStandin, NetsuiteStandin, PsaStandin, SalesforceStandin,
    hubspot,
};
use serde_json::{Value, json};

use crate::config::{Config, Scope, Token};
use crate::flows::{FlowOptions, Flows};
use crate::runtime::Runtime;
use crate::{api, shipped};

/// What the demo created, for callers that check it.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Key of the Jira project created.
    pub project_key: String,
    /// Key of the kickoff issue created.
    pub issue_key: String,
    /// Status of the PSA project at the end (`active` once the contract is signed).
    pub psa_status: String,
    /// Each run of the demo: flow and final status.
    pub runs: Vec<(String, String)>,
}

const HUBSPOT_TOKEN: &str = "demo-hubspot-private-app-token";
/// The secret HubSpot signs its webhooks with (the app's client secret).
pub const HUBSPOT_SECRET: &str = "demo-hubspot-client-secret";
/// The access token the Salesforce stand-in accepts.
pub const SALESFORCE_TOKEN: &str = "demo-salesforce-access-token";
const NETSUITE_TOKEN: &str = "demo-netsuite-access-token";
/// The access token the PSA stand-in accepts.
pub const PSA_TOKEN: &str = "demo-psa-access-token";
const JIRA_EMAIL: &str = "demo@junction.example";
const JIRA_TOKEN: &str = "demo-jira-api-token";
/// The access token the contract stand-in accepts.
pub const CONTRACT_TOKEN: &str = "demo-contract-access-token";
/// The key the contract tool signs its webhooks with.
pub const CONTRACT_SECRET: &str = "demo-contract-connect-hmac-key";

/// The SaaS tools of the story, each a stand-in on loopback; the demo and
/// the shipped flows' end-to-end tests use the same estate.
pub struct Estate {
    /// The CRM.
    pub hubspot: HubspotStandin,
    /// The other CRM, for firms that sell in Salesforce.
    pub salesforce: SalesforceStandin,
    /// The ERP.
    pub netsuite: NetsuiteStandin,
    /// The PSA, with five people to staff.
    pub psa: PsaStandin,
    /// The project tool.
    pub jira: JiraStandin,
    /// The contract tool.
    pub contracts: ContractStandin,
}

impl Estate {
    /// Starts every stand-in and seeds the PSA's people.
    pub async fn start() -> anyhow::Result<Estate> {
        let estate = Estate {
            hubspot: HubspotStandin::start(HUBSPOT_TOKEN).await?,
            salesforce: SalesforceStandin::start(SALESFORCE_TOKEN).await?,
            netsuite: NetsuiteStandin::start(NETSUITE_TOKEN).await?,
            psa: PsaStandin::start(PSA_TOKEN).await?,
            jira: JiraStandin::start(JIRA_EMAIL, JIRA_TOKEN).await?,
            contracts: ContractStandin::start(CONTRACT_TOKEN).await?,
        };
        for (name, skills, hours, cost) in [
            ("Ada Lovelace", &["delivery", "netsuite"][..], 120.0, 95.0),
            ("Grace Hopper", &["netsuite", "finance"][..], 160.0, 80.0),
            ("Alan Turing", &["integration", "rust"][..], 140.0, 85.0),
            (
                "Edsger Dijkstra",
                &["integration", "netsuite"][..],
                60.0,
                70.0,
            ),
            ("Barbara Liskov", &["delivery"][..], 40.0, 110.0),
        ] {
            estate.psa.add_person(NewPerson {
                name: name.into(),
                email: format!(
                    "{}@consultancy.example",
                    name.to_lowercase().replace(' ', ".")
                ),
                skills: skills.iter().map(|s| s.to_string()).collect(),
                available_hours: hours,
                cost_rate: cost,
                currency: "USD".into(),
            });
        }
        Ok(estate)
    }

    /// The connections the story needs, as `PUT /v1/connections/{name}`
    /// bodies (the contract tool's is [`Estate::contracts_connection`]).
    pub fn connections(&self) -> Vec<(&'static str, Value)> {
        let reach =
            |host: String| json!({"allowed_hosts": [host.clone()], "private_hosts": [host]});
        let with = |mut spec: Value, host: String| {
            let extra = reach(host);
            for (k, v) in extra.as_object().into_iter().flatten() {
                spec[k] = v.clone();
            }
            spec
        };
        vec![
            (
                "hubspot",
                with(
                    json!({
                        "plugin": "hubspot",
                        "config": {"base_url": self.hubspot.base_url()},
                        "auth": {"type": "bearer", "token": HUBSPOT_TOKEN},
                        "webhook": {"scheme": "hubspot_v3", "secret": HUBSPOT_SECRET},
                    }),
                    self.hubspot.host(),
                ),
            ),
            (
                "salesforce",
                with(
                    json!({
                        "plugin": "salesforce",
                        "config": {"instance_url": self.salesforce.base_url()},
                        "auth": {"type": "bearer", "token": SALESFORCE_TOKEN},
                    }),
                    self.salesforce.host(),
                ),
            ),
            (
                "netsuite",
                with(
                    json!({
                        "plugin": "netsuite",
                        "config": {"base_url": self.netsuite.base_url()},
                        "auth": {"type": "bearer", "token": NETSUITE_TOKEN},
                    }),
                    self.netsuite.host(),
                ),
            ),
            (
                "psa",
                with(
                    json!({
                        "plugin": "psa",
                        "config": {"base_url": self.psa.base_url()},
                        "auth": {"type": "bearer", "token": PSA_TOKEN},
                    }),
                    self.psa.host(),
                ),
            ),
            (
                "jira",
                with(
                    json!({
                        "plugin": "jira",
                        "config": {"base_url": self.jira.base_url()},
                        "auth": {"type": "basic", "username": JIRA_EMAIL, "password": JIRA_TOKEN},
                    }),
                    self.jira.host(),
                ),
            ),
        ]
    }

    /// The contract tool's connection, with its signed webhooks.
    pub fn contracts_connection(&self) -> Value {
        json!({
            "plugin": "contract",
            "config": {
                "base_url": self.contracts.base_url(),
                "account_id": junction_standins::contract::ACCOUNT_ID,
            },
            "auth": {"type": "bearer", "token": CONTRACT_TOKEN},
            "webhook": {
                "scheme": {"generic_hmac": {"header": "x-docusign-signature-1", "encoding": "base64"}},
                "secret": CONTRACT_SECRET,
            },
            "allowed_hosts": [self.contracts.host()],
            "private_hosts": [self.contracts.host()],
        })
    }
}

/// Runs the demo and prints what happened in each system. With
/// `keep_running` the host stays up afterwards until Ctrl-C.
pub async fn run(keep_running: bool) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    let data = tempfile::Builder::new()
        .prefix("junction-demo-")
        .tempdir()
        .context("creating a data directory")?;

    step(
        "starting SaaS stand-ins on loopback: HubSpot, Salesforce, NetSuite, PSA, Jira, contract tool",
    );
    let estate = Estate::start().await?;
    done("6 running; the PSA has 5 people to staff");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let token = format!("demo-{}", uuid::Uuid::new_v4().simple());
    let config = Config {
        listen: listener.local_addr()?,
        database: Some(data.path().join("junction.db")),
        cache_dir: Some(data.path().join("cache")),
        public_url: Some(base.clone()),
        tokens: BTreeMap::from([(
            "demo".to_string(),
            Token {
                token: token.clone(),
                scope: Scope::Admin,
            },
        )]),
        ..Config::default()
    };

    step("opening the store (SQLite, WAL, synchronous=FULL)");
    let runtime = Runtime::open(&config).await?;
    done(&data.path().join("junction.db").display().to_string());

    let t = Instant::now();
    step("loading the shipped plugins (the contract connector is kept for later)");
    let mut loaded = Vec::new();
    for package in shipped::packages() {
        if package.manifest_text() == shipped::CONTRACT_MANIFEST {
            continue;
        }
        let up = runtime.upload_package(&package.to_bytes(), "demo").await?;
        loaded.push(format!("{}@{}", up.name, up.version));
    }
    done(&format!(
        "{} plugins in {} ms: {}",
        loaded.len(),
        t.elapsed().as_millis(),
        loaded.join(", ")
    ));

    step("starting the HTTP API and the flow workers");
    let flows = Flows::new(
        runtime.clone(),
        FlowOptions {
            workers: 4,
            lease: Duration::from_secs(30),
            idle_poll: Duration::from_millis(50),
        },
    );
    flows.spawn_workers();
    let app = api::router_with_flows(flows.clone(), &config);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    done(&base);

    let client = Client {
        http: reqwest::Client::new(),
        base: base.clone(),
        token,
    };

    for (name, spec) in estate.connections() {
        step(&format!(
            "PUT /v1/connections/{name} (credentials held by the host)"
        ));
        client
            .send(
                reqwest::Method::PUT,
                &format!("/v1/connections/{name}"),
                Body::Json(spec),
            )
            .await?;
        done("created");
    }
    deploy(&client, "closed-won-to-project").await?;

    // Act 1: the deal is won.
    step("HubSpot: company Globex and deal \"Globex ERP rollout\" (stage contractsent)");
    let deal_id = crm_deal(&estate.hubspot).await?;
    done(&format!("deal {deal_id}"));
    step("HubSpot: the deal moves to closedwon; HubSpot's signed webhook reaches the host");
    let event = hubspot::property_change_event("deal", deal_id, "dealstage", "closedwon");
    let delivery = hubspot::webhook_delivery(
        HUBSPOT_SECRET,
        &format!("{base}/v1/webhooks/hubspot"),
        &[event],
    );
    let answer = client
        .send_raw(
            reqwest::Method::POST,
            "/v1/webhooks/hubspot",
            delivery.headers(),
            delivery.body.clone(),
        )
        .await?;
    let run_id = answer["runs"]
        .as_array()
        .and_then(|runs| {
            runs.iter()
                .find(|r| r["flow"] == "closed-won-to-project")
                .and_then(|r| r["run"].as_str())
        })
        .with_context(|| format!("the webhook started no closed-won-to-project run: {answer}"))?
        .to_string();
    done(&format!("run {run_id}"));
    let first = finished(&client, &run_id).await?;
    print_run(&first);

    let project = estate
        .psa
        .projects()
        .into_iter()
        .next()
        .context("the PSA has no project")?;
    let external_id = project["external_id"]
        .as_str()
        .context("the PSA project has no external id")?
        .to_string();

    // Act 2: hot-load the contract tool while the host keeps serving.
    println!();
    println!("While the host keeps serving: a new SaaS tool");
    let contract_package = shipped::packages()
        .into_iter()
        .find(|p| p.manifest_text() == shipped::CONTRACT_MANIFEST)
        .context("the contract connector is not shipped")?;
    let t = Instant::now();
    step("POST /v1/plugins (the contract-tool connector package)");
    let uploaded = client
        .send(
            reqwest::Method::POST,
            "/v1/plugins",
            Body::Bytes(contract_package.to_bytes()),
        )
        .await?;
    done(&format!(
        "{}@{} serving after {} ms, no restart",
        uploaded["name"].as_str().unwrap_or("?"),
        uploaded["version"].as_str().unwrap_or("?"),
        t.elapsed().as_millis()
    ));
    step("PUT /v1/connections/contracts");
    client
        .send(
            reqwest::Method::PUT,
            "/v1/connections/contracts",
            Body::Json(estate.contracts_connection()),
        )
        .await?;
    done("created");
    deploy(&client, "contract-signed-activates-project").await?;
    estate
        .contracts
        .subscribe_webhooks(&format!("{base}/v1/webhooks/contracts"), CONTRACT_SECRET);
    step("contract tool: a contract for the project is sent, and the customer signs it");
    let contract_id = send_contract(&estate.contracts, &external_id).await?;
    estate.contracts.sign(&contract_id)?;
    done(&format!(
        "contract {contract_id} completed; contract.signed sent"
    ));
    let second = run_of(&client, "contract-signed-activates-project").await?;
    print_run(&second);

    // What each system now holds.
    println!();
    println!("Records in each system");
    for deal in estate.hubspot.deals() {
        println!(
            "  HubSpot   deal {} \"{}\" stage {}",
            deal["id"].as_str().unwrap_or("?"),
            deal["properties"]["dealname"].as_str().unwrap_or("?"),
            deal["properties"]["dealstage"].as_str().unwrap_or("?")
        );
    }
    for c in estate.netsuite.customers() {
        println!(
            "  NetSuite  customer {} \"{}\" externalId {}",
            c["id"].as_str().unwrap_or("?"),
            c["companyName"].as_str().unwrap_or("?"),
            c["externalId"].as_str().unwrap_or("-")
        );
    }
    for j in estate.netsuite.jobs() {
        println!(
            "  NetSuite  job {} \"{}\" for customer {} externalId {}",
            j["id"].as_str().unwrap_or("?"),
            j["companyName"].as_str().unwrap_or("?"),
            j["parent"]["id"].as_str().unwrap_or("?"),
            j["externalId"].as_str().unwrap_or("-")
        );
    }
    let psa_projects = estate.psa.projects();
    for p in &psa_projects {
        println!(
            "  PSA       project {} \"{}\" status {} externalId {}",
            p["id"].as_str().unwrap_or("?"),
            p["name"].as_str().unwrap_or("?"),
            p["status"].as_str().unwrap_or("?"),
            p["external_id"].as_str().unwrap_or("-")
        );
    }
    let people: BTreeMap<String, String> = estate
        .psa
        .people()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap_or("?").to_string(),
                p["name"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    let roles: BTreeMap<String, String> = estate
        .psa
        .roles()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or("?").to_string(),
                r["name"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    for r in estate.psa.roles() {
        println!(
            "  PSA       role {} \"{}\" {} h",
            r["id"].as_str().unwrap_or("?"),
            r["name"].as_str().unwrap_or("?"),
            r["hours"]
        );
    }
    for a in estate.psa.assignments() {
        let person = a["person_id"].as_str().unwrap_or("?");
        let role = a["role_id"].as_str().unwrap_or("?");
        println!(
            "  PSA       assignment {}: {} as {} for {} h",
            a["id"].as_str().unwrap_or("?"),
            people.get(person).map_or(person, String::as_str),
            roles.get(role).map_or(role, String::as_str),
            a["hours"]
        );
    }
    let jira_projects = estate.jira.projects();
    for p in &jira_projects {
        println!(
            "  Jira      project {} \"{}\"",
            p["key"].as_str().unwrap_or("?"),
            p["name"].as_str().unwrap_or("?")
        );
    }
    let issues = estate.jira.issues();
    for i in &issues {
        println!(
            "  Jira      issue {} \"{}\"",
            i["key"].as_str().unwrap_or("?"),
            i["fields"]["summary"].as_str().unwrap_or("?")
        );
    }
    for c in estate.contracts.contracts() {
        println!(
            "  Contracts contract {} \"{}\" status {} externalReference {}",
            c["contractId"].as_str().unwrap_or("?"),
            c["title"].as_str().unwrap_or("?"),
            c["status"].as_str().unwrap_or("?"),
            c["externalReference"].as_str().unwrap_or("-")
        );
    }

    let runs = vec![
        (
            "closed-won-to-project".to_string(),
            first["status"].as_str().unwrap_or("?").to_string(),
        ),
        (
            "contract-signed-activates-project".to_string(),
            second["status"].as_str().unwrap_or("?").to_string(),
        ),
    ];
    println!();
    println!("Runs");
    for (flow, status) in &runs {
        println!("  {flow}: {status}");
    }
    println!();
    println!("Where to look");
    println!(
        "  API       {base}/v1/runs  (Authorization: Bearer {})",
        client.token
    );
    println!("  health    {base}/healthz");

    let project_key = jira_projects
        .first()
        .and_then(|p| p["key"].as_str())
        .unwrap_or("")
        .to_string();
    let issue_key = issues
        .first()
        .and_then(|i| i["key"].as_str())
        .unwrap_or("")
        .to_string();
    let psa_status = psa_projects
        .first()
        .and_then(|p| p["status"].as_str())
        .unwrap_or("")
        .to_string();
    println!();
    println!("Created Jira project: {project_key}; PSA project {psa_status}");
    println!("demo finished in {:.1} s", started.elapsed().as_secs_f64());
    if runs.iter().any(|(_, status)| status != "completed") {
        bail!("a run did not complete: {runs:?}");
    }
    if psa_status != "active" {
        bail!("the signed contract did not activate the PSA project (status {psa_status})");
    }

    if keep_running {
        println!("serving until Ctrl-C ...");
        tokio::signal::ctrl_c().await?;
    }
    server.abort();
    Ok(DemoReport {
        project_key,
        issue_key,
        psa_status,
        runs,
    })
}

/// Deploys a shipped flow through the API.
async fn deploy(client: &Client, name: &str) -> anyhow::Result<()> {
    let source = shipped::flow(name).with_context(|| format!("no shipped flow `{name}`"))?;
    step(&format!("PUT /v1/flows/{name}"));
    let deployed = client
        .send(
            reqwest::Method::PUT,
            &format!("/v1/flows/{name}"),
            Body::Text(source.to_string()),
        )
        .await?;
    done(&format!("version {}", deployed["version"]));
    Ok(())
}

/// Creates, in the HubSpot stand-in as a salesperson would, a company and a
/// deal associated with it, then moves the deal to closed-won; returns the deal id.
pub async fn crm_deal(hubspot: &HubspotStandin) -> anyhow::Result<u64> {
    let http = reqwest::Client::new();
    let company = saas(
        http.post(format!("{}/crm/v3/objects/companies", hubspot.base_url()))
            .bearer_auth(HUBSPOT_TOKEN)
            .json(&json!({"properties": {
                "name": "Globex Corporation", "domain": "globex.example", "country": "United States"
            }})),
    )
    .await?;
    let company_id = company["id"].as_str().context("company without id")?;
    let deal = saas(
        http.post(format!("{}/crm/v3/objects/deals", hubspot.base_url()))
            .bearer_auth(HUBSPOT_TOKEN)
            .json(&json!({
                "properties": {
                    "dealname": "Globex ERP rollout", "amount": "250000",
                    "closedate": "2026-12-01T00:00:00.000Z", "dealstage": "contractsent",
                    "pipeline": "default", "deal_currency_code": "USD"
                },
                "associations": [{
                    "to": {"id": company_id},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]
                }]
            })),
    )
    .await?;
    let deal_id = deal["id"].as_str().context("deal without id")?.to_string();
    saas(
        http.patch(format!(
            "{}/crm/v3/objects/deals/{deal_id}",
            hubspot.base_url()
        ))
        .bearer_auth(HUBSPOT_TOKEN)
        .json(&json!({"properties": {"dealstage": "closedwon"}})),
    )
    .await?;
    deal_id
        .parse()
        .with_context(|| format!("deal id `{deal_id}` is not a number"))
}

/// Sends a contract for the PSA project `external_id` from the contract stand-in.
pub async fn send_contract(
    contracts: &ContractStandin,
    external_id: &str,
) -> anyhow::Result<String> {
    let created = saas(
        reqwest::Client::new()
            .post(format!(
                "{}{}/contracts",
                contracts.base_url(),
                junction_standins::contract::API_PATH
            ))
            .bearer_auth(CONTRACT_TOKEN)
            .json(&json!({
                "title": "Globex ERP rollout: statement of work",
                "signers": [{"name": "Hank Scorpio", "email": "hank@globex.example"}],
                "externalReference": external_id,
                "value": {"amount": 250000, "currency": "USD"},
                "status": "sent"
            })),
    )
    .await?;
    Ok(created["contractId"]
        .as_str()
        .context("contract without id")?
        .to_string())
}

/// Sends a request to a stand-in and returns its JSON answer.
async fn saas(request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("the stand-in answered {status}: {text}");
    }
    if text.is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_str(&text)?)
}

const TERMINAL: [&str; 3] = ["completed", "compensated", "failed"];

/// Polls a run until it ends (at most a minute).
async fn finished(client: &Client, run: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = client
            .send(
                reqwest::Method::GET,
                &format!("/v1/runs/{run}"),
                Body::Empty,
            )
            .await?;
        if TERMINAL.contains(&view["status"].as_str().unwrap_or("")) {
            return Ok(view);
        }
        if Instant::now() > deadline {
            bail!("run {run} did not finish within a minute: {view}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits for the first run of `flow` and until it ends.
async fn run_of(client: &Client, flow: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = client
            .send(
                reqwest::Method::GET,
                &format!("/v1/runs?flow={flow}"),
                Body::Empty,
            )
            .await?;
        if let Some(id) = runs["runs"]
            .as_array()
            .and_then(|r| r.first())
            .and_then(|r| r["id"].as_str())
        {
            return finished(client, id).await;
        }
        if Instant::now() > deadline {
            bail!("no run of {flow} started within a minute");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn print_run(run: &Value) {
    println!(
        "     run {} of {}: {}",
        run["id"].as_str().unwrap_or("?"),
        run["flow"].as_str().unwrap_or("?"),
        run["status"].as_str().unwrap_or("?")
    );
    for s in run["steps"].as_array().into_iter().flatten() {
        println!(
            "       {:<14} {:<10} attempts {}  key {}",
            s["id"].as_str().unwrap_or("?"),
            s["status"].as_str().unwrap_or("?"),
            s["attempts"],
            s["idempotency_key"].as_str().unwrap_or("-")
        );
        for e in s["errors"].as_array().into_iter().flatten() {
            println!(
                "         {} error: {}",
                e["kind"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or("?")
            );
        }
    }
}

fn step(what: &str) {
    use std::io::Write as _;
    print!("  .. {what} ");
    let _ = std::io::stdout().flush();
}

fn done(result: &str) {
    println!("-> {result}");
}

enum Body {
    Empty,
    Json(Value),
    Text(String),
    Bytes(Vec<u8>),
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn send(&self, method: reqwest::Method, path: &str, body: Body) -> anyhow::Result<Value> {
        let request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        let request = match body {
            Body::Empty => request,
            Body::Json(value) => request.json(&value),
            Body::Text(text) => request
                .header("content-type", "application/toml")
                .body(text),
            Body::Bytes(bytes) => request
                .header("content-type", "application/octet-stream")
                .body(bytes),
        };
        Self::answer(&method, path, request).await
    }

    /// Posts `body` with `headers` and no bearer token, as a webhook sender does.
    async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: Vec<(&'static str, String)>,
        body: String,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        Self::answer(&method, path, request).await
    }

    async fn answer(
        method: &reqwest::Method,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<Value> {
        let response = request
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
