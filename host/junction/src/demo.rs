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
//!    resource optimizer and booked as PSA assignments. The governance
//!    document (`flows/governance.toml`) is deployed first; the run's
//!    project is read back from the id map with its id in every system,
//!    and a flow that writes the ERP's budget over the CRM's is refused.
//! 2. While the host keeps serving, the contract-tool connector is uploaded
//!    (hot-loaded: no restart), connected, and `contract-signed-activates-project`
//!    deployed; the customer signs the contract, the contract tool's signed
//!    webhook arrives, and the PSA project becomes active.
//!
//! It prints each system's resulting records and the run summaries.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use junction_standins::hubspot;

use crate::config::{ApiConfig, Config, RuntimeConfig, Scope, StoreConfig, Token};
use crate::shipped;
use junction_api as api;
use junction_flows::{FlowOptions, Flows};
use junction_runtime::Runtime;

mod client;
mod estate;
mod governance;

use client::*;
pub use estate::*;
pub use governance::BUDGET_FROM_ERP;

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
        store: StoreConfig {
            database: Some(data.path().join("junction.db")),
            ..StoreConfig::default()
        },
        runtime: RuntimeConfig {
            cache_dir: Some(data.path().join("cache")),
            ..RuntimeConfig::default()
        },
        api: ApiConfig {
            listen: listener.local_addr()?,
            public_url: Some(base.clone()),
            tokens: BTreeMap::from([(
                "demo".to_string(),
                Token {
                    token: token.clone(),
                    scope: Scope::Admin,
                },
            )]),
            ..ApiConfig::default()
        },
        ..Config::default()
    };

    step("opening the store (SQLite, WAL, synchronous=FULL)");
    let runtime = Runtime::open(&config.store, &config.runtime).await?;
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
    let app = api::router_with_flows(flows.clone(), &config.api);
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
    governance::deploy(&client).await?;
    deploy(&client, "closed-won-to-project").await?;

    // Act 1: the deal is won.
    step("HubSpot: company Globex and deal \"Globex ERP rollout\" (stage contractsent)");
    let deal_id = crm_deal(&estate.hubspot, "USD").await?;
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
    governance::act(&client, &first).await?;

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
    println!("Runs (each one trace, from the webhook to the last call)");
    for ((flow, status), run) in runs.iter().zip([&first, &second]) {
        println!(
            "  {flow}: {status}  run {}  trace {}",
            run["id"].as_str().unwrap_or("?"),
            run["trace_id"].as_str().unwrap_or("-")
        );
    }
    println!();
    println!("Where to look (Authorization: Bearer {})", client.token);
    println!("  runs      {base}/v1/runs");
    println!("  metrics   {base}/metrics  (Prometheus text, with the KPI gauges)");
    println!(
        "  kpis      {base}/v1/kpis  (project setup time, failed syncs, manual touches, blocked invoices)"
    );
    println!("  openapi   {base}/v1/openapi.json  (OpenAPI 3.1, no token needed)");
    println!("  health    {base}/healthz");
    println!(
        "  console   {base}/console/  (sign in with the token; `demo --keep-running` prints a one-time link)"
    );
    println!("  traces    set OTEL_EXPORTER_OTLP_ENDPOINT before `junction serve` to export them");

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
        // A one-time link: whoever opens it first is signed in as the demo's
        // admin token, without pasting it.
        let link = client
            .send(reqwest::Method::POST, "/v1/console/links", Body::Empty)
            .await?;
        println!();
        println!(
            "Console (one-time sign-in link, valid 10 minutes): {}",
            link["url"].as_str().unwrap_or("?")
        );
        println!("  later: {base}/console/ and sign in with the token above");
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
