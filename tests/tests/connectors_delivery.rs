//! The delivery-side connectors through a running host (a real socket)
//! against their stand-ins: the PSA, the proposal tool and the contract tool,
//! and the approved-time -> invoice transform.
//!
//! Each connector's happy paths and paging, each HTTP error of its system
//! (through the stand-ins' misbehaviour controls where the system would not
//! fail on its own) as the API's error, idempotency keys reaching the PSA,
//! and webhooks signed by the stand-ins, verified by the host and parsed into
//! events. The contract connector is pushed as a package to the running host,
//! and its `contract.signed` event activates the PSA project through a flow.
//!
//! Nothing here waits a fixed time: webhook deliveries and runs are polled
//! with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use junction::config::{Scope, Token};
use junction::shipped;
use junction_api as api;
use junction_registry::Package;
use junction_runtime::engine::Limits;
use junction_runtime::runtime::{CallOptions, Runtime};
use junction_standins::psa::NewPerson;
use junction_standins::{
    ContractStandin, Misbehaviour, ProposalStandin, PsaStandin, WebhookAttempt,
};
use junction_tests::{eventually, runtime_with, test_config, test_limits};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789";
const PSA_TOKEN: &str = "psa-access-token-5d1e";
const PROPOSAL_KEY: &str = "proposal-api-key-77b0";
const CONTRACT_TOKEN: &str = "contract-access-token-c3a9";
const PROPOSAL_SECRET: &str = "proposal-webhook-secret-0e4f";
const CONTRACT_SECRET: &str = "contract-connect-hmac-key-91d2";

/// Compiled code shared by the tests of this file: the first one to load
/// the plugins compiles them, the others read the cache.
fn cache_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("connectors-delivery-cache")
}

static LOADING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A host serving the API on a loopback port, with the PSA and proposal
/// connectors and the invoice transform loaded from their packages (the
/// contract connector is pushed by the test that needs it).
struct Host {
    rt: Arc<Runtime>,
    base: String,
    http: reqwest::Client,
}

async fn host() -> Host {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = {
        let mut config = test_config(Limits {
            deadline_ms: 10_000,
            ..test_limits()
        });
        config.runtime.cache_dir = Some(cache_dir());
        config.api.public_url = Some(base.clone());
        config.api.tokens = BTreeMap::from([(
            "admin".into(),
            Token {
                token: ADMIN.into(),
                scope: Scope::Admin,
            },
        )]);
        config
    };
    config.validate().unwrap();
    let rt = runtime_with(&config).await;
    {
        let _first = LOADING.lock().await;
        for (manifest, component) in [
            (shipped::PSA_MANIFEST, shipped::PSA_CONNECTOR),
            (shipped::PROPOSAL_MANIFEST, shipped::PROPOSAL_CONNECTOR),
            (
                shipped::APPROVED_TIME_TO_INVOICE_MANIFEST,
                shipped::APPROVED_TIME_TO_INVOICE,
            ),
        ] {
            let package = Package::new(manifest, component).to_bytes();
            rt.upload_package(&package, "test").await.unwrap();
        }
    }
    let app = api::router(rt.clone(), &config.api, config.flows.options());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Host {
        rt,
        base,
        http: reqwest::Client::new(),
    }
}

/// An answer of the API.
struct Answer {
    status: StatusCode,
    body: Value,
    retry_after: Option<String>,
}

impl Host {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{method} {path}: answer is not JSON ({status}): {text}"));
        Answer {
            status,
            body,
            retry_after,
        }
    }

    async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PUT, path, body.to_string().into_bytes(), &[])
            .await
    }

    async fn get(&self, path: &str) -> Value {
        let answer = self.send(Method::GET, path, Vec::new(), &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "GET {path}: {}", answer.body);
        answer.body
    }

    /// Runs the connection's `check`, which must succeed.
    async fn check(&self, connection: &str) {
        let path = format!("/v1/connections/{connection}/check");
        let answer = self.send(Method::POST, &path, Vec::new(), &[]).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{connection}: {}",
            answer.body
        );
    }

    /// Invokes `operation` on `connection`.
    async fn invoke(&self, connection: &str, operation: &str, input: Value) -> Answer {
        let path = format!("/v1/connections/{connection}/operations/{operation}");
        self.send(Method::POST, &path, input.to_string().into_bytes(), &[])
            .await
    }

    /// Invokes `operation` and returns its output, which must be a success.
    async fn ok(&self, connection: &str, operation: &str, input: Value) -> Value {
        let answer = self.invoke(connection, operation, input).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{connection} {operation}: {}",
            answer.body
        );
        answer.body
    }

    /// Invokes `operation`, which must fail with error `code` saying `says`.
    async fn refused(
        &self,
        connection: &str,
        operation: &str,
        input: Value,
        code: &str,
        says: &str,
    ) {
        let answer = self.invoke(connection, operation, input).await;
        assert_error(&answer, code, says);
    }

    /// Reads one page of `stream` through the `read` operation.
    async fn read(&self, connection: &str, stream: &str, cursor: Option<&str>) -> Value {
        let mut input = json!({ "stream": stream });
        if let Some(cursor) = cursor {
            input["cursor"] = json!(cursor);
        }
        self.ok(connection, "read", input).await
    }

    /// Posts a webhook as received: its headers and exact body, no token.
    async fn webhook(&self, connection: &str, attempt: &WebhookAttempt, body: &str) -> Answer {
        let mut request = self
            .http
            .post(format!("{}/v1/webhooks/{connection}", self.base))
            .body(body.to_owned());
        for (name, value) in &attempt.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body = response.json().await.unwrap();
        Answer {
            status,
            body,
            retry_after: None,
        }
    }
}

/// The status the API answers an error `code` with.
fn status_of(code: &str) -> StatusCode {
    match code {
        "invalid_input" => StatusCode::UNPROCESSABLE_ENTITY,
        "upstream_unauthorized" => StatusCode::BAD_GATEWAY,
        "upstream_not_found" => StatusCode::NOT_FOUND,
        "conflict" => StatusCode::CONFLICT,
        "rate_limited" => StatusCode::TOO_MANY_REQUESTS,
        "upstream_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        other => panic!("no status for error code {other}"),
    }
}

/// An error answer of the API with `code` (and its status) and a message
/// saying `says`.
#[track_caller]
fn assert_error(answer: &Answer, code: &str, says: &str) {
    assert_eq!(answer.status, status_of(code), "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], code, "{}", answer.body);
    let message = answer.body["error"]["message"].as_str().unwrap();
    assert!(message.contains(says), "`{message}` should say `{says}`");
}

/// The four failures every system can answer with, played by the stand-in
/// on the next request: 401, 429 (`Retry-After: 1`), 500 and, for a
/// delayed answer, nothing but a slower success.
async fn assert_played_failures(
    host: &Host,
    connection: &str,
    call: (&str, Value),
    play: impl Fn(Misbehaviour),
) {
    let (operation, input) = call;
    play(Misbehaviour::Unauthorized { times: 1 });
    let answer = host.invoke(connection, operation, input.clone()).await;
    assert_error(&answer, "upstream_unauthorized", "401");
    play(Misbehaviour::ServerError { times: 1 });
    let answer = host.invoke(connection, operation, input.clone()).await;
    assert_error(&answer, "upstream_unavailable", "500");
    play(Misbehaviour::RateLimited {
        times: 1,
        retry_after_secs: 1,
    });
    let answer = host.invoke(connection, operation, input.clone()).await;
    assert_error(&answer, "rate_limited", "rate limited");
    assert_eq!(answer.retry_after.as_deref(), Some("1"));
    // The host holds the connection back for the second asked, then the
    // same call goes through.
    let answer = host.invoke(connection, operation, input).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

/// Polls the stand-in's webhook log until `count` deliveries were taken
/// (answered 2xx); panics after 20 s.
async fn delivered(
    attempts: impl Fn() -> Vec<WebhookAttempt>,
    count: usize,
) -> Vec<WebhookAttempt> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all = attempts();
        let taken: Vec<WebhookAttempt> = all.iter().filter(|a| a.delivered()).cloned().collect();
        if taken.len() >= count {
            return taken;
        }
        if let Some(failed) = all.iter().find(|a| !a.delivered() && a.status.is_some()) {
            panic!("the host refused a webhook: {failed:?}");
        }
        assert!(Instant::now() < deadline, "webhooks not delivered: {all:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------- PSA

async fn connect_psa(host: &Host, psa: &PsaStandin) {
    let answer = host
        .put(
            "/v1/connections/psa",
            json!({
                "plugin": "psa",
                "config": {"base_url": psa.base_url(), "page_size": "2"},
                "auth": {"type": "bearer", "token": PSA_TOKEN},
                "allowed_hosts": [psa.host()], "private_hosts": [psa.host()],
            }),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
}

fn person(name: &str, skills: &[&str], cost: f64) -> NewPerson {
    NewPerson {
        name: name.into(),
        email: format!(
            "{}@consultancy.example",
            name.to_lowercase().replace(' ', ".")
        ),
        skills: skills.iter().map(|s| (*s).to_owned()).collect(),
        available_hours: 120.0,
        cost_rate: cost,
        currency: "USD".into(),
    }
}

/// A request straight to a stand-in, as its users would make it; it must succeed.
async fn standin_call(request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// A request straight to the PSA stand-in.
async fn psa_api(psa: &PsaStandin, method: Method, path: &str, body: Value) -> Value {
    let url = format!("{}/api/v1{path}", psa.base_url());
    standin_call(
        reqwest::Client::new()
            .request(method, url)
            .bearer_auth(PSA_TOKEN)
            .json(&body),
    )
    .await
}

/// Roles for `add-roles`, in the canonical v1 shape.
fn canonical_roles() -> Value {
    json!([
        {"id": "lead-engineer", "name": "Lead engineer", "skills": ["rust"], "hours": 80.0,
         "start_date": "2026-11-02", "end_date": "2026-12-18",
         "bill_rate": {"amount": 187.5, "currency": "USD"}},
        {"id": "analyst", "name": "Analyst", "skills": ["netsuite"], "hours": 40.0,
         "bill_rate": {"amount": 95.0, "currency": "USD"}}
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psa_projects_roles_people_and_assignments() {
    let host = host().await;
    let psa = PsaStandin::start(PSA_TOKEN).await.unwrap();
    let ada = psa.add_person(person(
        "Ada Lovelace",
        &["Rust", "Solution architecture"],
        85.0,
    ));
    psa.add_person(person("Grace Hopper", &["rust"], 90.0));
    psa.add_person(person("Alan Turing", &["netsuite"], 70.0));
    psa.add_person(person("Edsger Dijkstra", &["RUST"], 95.0));
    connect_psa(&host, &psa).await;
    host.check("psa").await;

    // Upsert by external id: created the first time, updated after.
    let upsert = json!({"external_id": "hubspot-9876543201", "name": "Acme rollout",
                        "customer": "Acme Corp", "start_date": "2026-11-02",
                        "budget": {"amount": 120000.0, "currency": "USD"}});
    let project = host.ok("psa", "upsert-project", upsert.clone()).await;
    assert_eq!(project["created"], true, "{project}");
    assert_eq!(project["status"], "pending");
    let id = project["id"].as_str().unwrap().to_owned();
    let renamed = json!({"external_id": "hubspot-9876543201", "name": "Acme rollout, phase 1"});
    let again = host.ok("psa", "upsert-project", renamed).await;
    assert_eq!(again["created"], false);
    assert_eq!(again["id"], id.as_str());
    assert_eq!(again["budget"]["amount"], 120000.0);
    assert_eq!(psa.projects().len(), 1);
    let by_external = host
        .ok(
            "psa",
            "get-project",
            json!({"external_id": "hubspot-9876543201"}),
        )
        .await;
    let by_id = host.ok("psa", "get-project", json!({"id": id})).await;
    assert_eq!(by_external, by_id);
    assert_eq!(by_id["name"], "Acme rollout, phase 1");

    // Roles from canonical roles, each created with a key of its own.
    let added = host
        .send(
            Method::POST,
            "/v1/connections/psa/operations/add-roles",
            json!({"project_id": id, "roles": canonical_roles()})
                .to_string()
                .into_bytes(),
            &[("idempotency-key", "run-7:roles")],
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    let lead = added.body["role_ids"]["lead-engineer"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(added.body["roles"][0]["id"], lead.as_str());
    assert_eq!(added.body["roles"][0]["bill_rate"]["amount"], 187.5);
    assert_eq!(added.body["roles"][1]["name"], "Analyst");
    let keys: Vec<String> = psa
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/roles") && r.method == "POST")
        .map(|r| r.header("idempotency-key").unwrap_or("none").to_owned())
        .collect();
    assert_eq!(
        keys,
        ["run-7:roles:role:lead-engineer", "run-7:roles:role:analyst"]
    );
    let roles = host
        .ok("psa", "list-roles", json!({"project_id": id}))
        .await;
    assert_eq!(roles["roles"], added.body["roles"]);

    // People, paged two at a time, filtered by skill, as canonical resources.
    let first = host
        .ok("psa", "list-people", json!({"skill": "rust"}))
        .await;
    let names = |page: &Value| -> Vec<String> {
        page["people"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&first), ["Ada Lovelace", "Grace Hopper"]);
    assert_eq!(
        (first["total"].clone(), first["next_page"].clone()),
        (json!(3), json!(2))
    );
    assert_eq!(
        first["people"][0],
        json!({"id": ada, "name": "Ada Lovelace", "skills": ["rust", "solution architecture"],
               "available_hours": 120.0, "cost_rate": {"amount": 85.0, "currency": "USD"},
               "external_ids": {"psa": ada}})
    );
    let second = host
        .ok("psa", "list-people", json!({"skill": "rust", "page": 2}))
        .await;
    assert_eq!(names(&second), ["Edsger Dijkstra"]);
    assert!(second.get("next_page").is_none(), "{second}");
    // The `people` stream pages through everyone.
    let mut cursor: Option<String> = None;
    let mut everyone = Vec::new();
    loop {
        let page = host.read("psa", "people", cursor.as_deref()).await;
        everyone.extend(
            page["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].clone()),
        );
        if page["done"] == true {
            break;
        }
        cursor = Some(page["next_cursor"].as_str().unwrap().to_owned());
    }
    assert_eq!(everyone.len(), 4);

    // Staffing, and its compensation with the `{input, output}` a saga feeds.
    let staff = json!({"project_id": id, "role_id": lead, "person_id": ada, "hours": 60.0});
    let assignment = host.ok("psa", "create-assignment", staff.clone()).await;
    assert_eq!(assignment["hours"], 60.0);
    let duplicate = host.invoke("psa", "create-assignment", staff.clone()).await;
    assert_error(&duplicate, "conflict", "`person_id`");
    let undo = json!({"input": staff, "output": assignment});
    let deleted = host.ok("psa", "delete-assignment", undo.clone()).await;
    assert_eq!(deleted, json!({"id": assignment["id"], "deleted": true}));
    assert!(psa.assignments().is_empty());
    // A compensation retried after it succeeded changes nothing and succeeds.
    let again = host.ok("psa", "delete-assignment", undo).await;
    assert_eq!(again["deleted"], false);

    // Status moves: by external id, and cancel-project as the compensation
    // of upsert-project.
    let active = host
        .ok(
            "psa",
            "activate-project",
            json!({"external_id": "hubspot-9876543201"}),
        )
        .await;
    assert_eq!(active["status"], "active");
    let twice = host.ok("psa", "activate-project", json!({"id": id})).await;
    assert_eq!(twice["status"], "active");
    let cancelled = host
        .ok(
            "psa",
            "cancel-project",
            json!({"input": upsert, "output": project}),
        )
        .await;
    assert_eq!(cancelled["status"], "cancelled");
    let closed = host
        .invoke(
            "psa",
            "set-project-status",
            json!({"id": id, "status": "active"}),
        )
        .await;
    assert_error(&closed, "invalid_input", "`status`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psa_creates_retried_with_one_idempotency_key_happen_once() {
    let host = host().await;
    let psa = PsaStandin::start(PSA_TOKEN).await.unwrap();
    let ada = psa.add_person(person("Ada Lovelace", &["rust"], 85.0));
    connect_psa(&host, &psa).await;
    let project = host
        .ok(
            "psa",
            "upsert-project",
            json!({"external_id": "crm-1", "name": "Globex"}),
        )
        .await;
    let roles = host
        .ok(
            "psa",
            "add-roles",
            json!({"project_id": project["id"], "roles": canonical_roles()}),
        )
        .await;
    let staff = json!({"project_id": project["id"], "person_id": ada,
                       "role_id": roles["role_ids"]["lead-engineer"]});
    // A flow step retried after a lost answer calls the plugin again with
    // the same key (`<run id>:<step id>`).
    let options = || CallOptions {
        idempotency_key: Some("run-42:staff".into()),
        attempt: 1,
        ..CallOptions::default()
    };
    let first = host
        .rt
        .invoke("psa", "create-assignment", &staff.to_string(), options())
        .await
        .unwrap();
    let retried = host
        .rt
        .invoke("psa", "create-assignment", &staff.to_string(), options())
        .await
        .unwrap();
    assert_eq!(first.json, retried.json);
    assert_eq!(psa.assignments().len(), 1);
    let posts: Vec<_> = psa
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/assignments"))
        .collect();
    assert_eq!(posts.len(), 2);
    for post in &posts {
        assert_eq!(post.header("idempotency-key"), Some("run-42:staff"));
    }
    // The same key for another request is the caller's mistake.
    let other = json!({"project_id": project["id"], "person_id": ada,
                       "role_id": roles["role_ids"]["analyst"]});
    let reused = host
        .rt
        .invoke("psa", "create-assignment", &other.to_string(), options())
        .await
        .unwrap_err();
    assert!(reused.to_string().contains("Idempotency-Key"), "{reused}");
    assert_eq!(psa.assignments().len(), 1);

    // A staffing plan in one step: each assignment has a key of its own, so a
    // retry makes none twice; its compensation deletes them all.
    let grace = psa.add_person(person("Grace Hopper", &["netsuite"], 90.0));
    let plan = json!({"project_id": project["id"], "assignments": [
        {"role_id": roles["role_ids"]["analyst"], "person_id": ada, "hours": 10.0},
        {"role_id": roles["role_ids"]["analyst"], "person_id": grace},
    ]});
    let options = || CallOptions {
        idempotency_key: Some("run-42:staffing".into()),
        attempt: 1,
        ..CallOptions::default()
    };
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let made = host
            .rt
            .invoke("psa", "create-assignments", &plan.to_string(), options())
            .await
            .unwrap();
        outputs.push(serde_json::from_str::<Value>(&made.json).unwrap());
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(
        outputs[0]["assignments"][1]["hours"], 40.0,
        "the role's hours"
    );
    assert_eq!(psa.assignments().len(), 3);
    let undone = host
        .ok(
            "psa",
            "delete-assignments",
            json!({"input": plan, "output": outputs[0]}),
        )
        .await;
    assert_eq!(undone["deleted"].as_array().unwrap().len(), 2);
    assert_eq!(psa.assignments().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psa_approved_time_is_read_after_the_since_cursor_and_invoiced() {
    let host = host().await;
    let psa = PsaStandin::start(PSA_TOKEN).await.unwrap();
    let ada = psa.add_person(person("Ada Lovelace", &["rust"], 85.0));
    let grace = psa.add_person(person("Grace Hopper", &["netsuite"], 90.0));
    connect_psa(&host, &psa).await;
    let project = host
        .ok(
            "psa",
            "upsert-project",
            json!({"external_id": "crm-7", "name": "Initech",
                                             "status": "active"}),
        )
        .await;
    let project_id = project["id"].as_str().unwrap().to_owned();
    let roles = host
        .ok(
            "psa",
            "add-roles",
            json!({"project_id": project_id, "roles": canonical_roles()}),
        )
        .await;
    let lead = roles["role_ids"]["lead-engineer"].clone();
    let analyst = roles["role_ids"]["analyst"].clone();

    // Nothing approved yet: an empty page whose cursor is where to start.
    let empty = host.read("psa", "approved-time-entries", None).await;
    assert_eq!(empty["records"], json!([]));
    assert_eq!(empty["done"], true);
    let start = empty["next_cursor"].as_str().unwrap().to_owned();

    // Five entries logged; four approved (one not billable), one left submitted.
    let mut ids = Vec::new();
    for (who, role, date, hours, billable) in [
        (&ada, &lead, "2026-11-02", 8.0, true),
        (&grace, &analyst, "2026-11-03", 0.1, true),
        (&ada, &lead, "2026-11-04", 7.5, true),
        (&grace, &analyst, "2026-11-05", 0.2, true),
        (&grace, &analyst, "2026-11-06", 3.0, false),
    ] {
        let entry = psa_api(
            &psa,
            Method::POST,
            "/time_entries",
            json!({"project_id": project_id, "person_id": who, "role_id": role, "date": date,
                   "hours": hours, "billable": billable, "status": "submitted"}),
        )
        .await;
        ids.push(entry["id"].as_str().unwrap().to_owned());
    }
    for id in [&ids[2], &ids[0], &ids[1], &ids[4]] {
        psa_api(
            &psa,
            Method::PATCH,
            &format!("/time_entries/{id}"),
            json!({"status": "approved"}),
        )
        .await;
    }

    // Two a page, in approval order, from the cursor kept earlier.
    let first = host
        .read("psa", "approved-time-entries", Some(&start))
        .await;
    let page_ids = |page: &Value| -> Vec<String> {
        page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(page_ids(&first), [ids[2].clone(), ids[0].clone()]);
    assert_eq!(first["done"], false);
    let second = host
        .read(
            "psa",
            "approved-time-entries",
            first["next_cursor"].as_str(),
        )
        .await;
    assert_eq!(page_ids(&second), [ids[1].clone(), ids[4].clone()]);
    assert_eq!(second["done"], true);
    let kept = second["next_cursor"].as_str().unwrap().to_owned();
    // Read again later from the kept cursor: only what was approved since.
    let nothing = host.read("psa", "approved-time-entries", Some(&kept)).await;
    assert_eq!(nothing["records"], json!([]));
    assert_eq!(nothing["next_cursor"], kept.as_str());
    psa_api(
        &psa,
        Method::PATCH,
        &format!("/time_entries/{}", ids[3]),
        json!({"status": "approved"}),
    )
    .await;
    let later = host.read("psa", "approved-time-entries", Some(&kept)).await;
    assert_eq!(page_ids(&later), [ids[3].clone()]);
    let bogus = host
        .invoke(
            "psa",
            "read",
            json!({"stream": "approved-time-entries", "cursor": "999"}),
        )
        .await;
    assert_error(&bogus, "invalid_input", "`since`");

    // The entries as read, the roles' bill rates and the NetSuite ids make
    // one invoice through the transform.
    let mut entries: Vec<Value> = Vec::new();
    for page in [&first, &second, &later] {
        entries.extend(page["records"].as_array().unwrap().iter().cloned());
    }
    let rates = host
        .ok("psa", "list-roles", json!({"project_id": project_id}))
        .await;
    let billing = json!({
        "customer": "Initech", "project_id": project_id, "project_key": "INITECH",
        "date": "2026-11-30", "currency": "USD", "entries": entries, "roles": rates["roles"],
        "netsuite": {"customer_id": "1001", "job_id": "1002", "item_id": "55"}
    });
    let applied = host
        .send(
            Method::POST,
            "/v1/transforms/approved-time-to-invoice/apply",
            billing.to_string().into_bytes(),
            &[],
        )
        .await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.body);
    let billed = &applied.body["outputs"][0];
    // 15.5 h x 187.50 = 2906.25; 0.3 h x 95.00 = 28.50.
    assert_eq!(
        billed["total"],
        json!({"amount": 2934.75, "currency": "USD"})
    );
    assert_eq!(
        billed["netsuite"]["item"]["items"],
        json!([
            {"item": {"id": "55"}, "quantity": 15.5, "rate": 187.5,
             "description": "Lead engineer, 2026-11-02 to 2026-11-04"},
            {"item": {"id": "55"}, "quantity": 0.3, "rate": 95.0,
             "description": "Analyst, 2026-11-03 to 2026-11-05"}
        ])
    );
    assert_eq!(billed["netsuite"]["entity"], json!({"id": "1001"}));
    assert_eq!(billed["netsuite"]["job"], json!({"id": "1002"}));
    assert_eq!(
        billed["skipped"],
        json!([{"id": ids[4], "reason": "not billable"}])
    );
    assert_eq!(
        billed["invoice"]["lines"][1]["time_entry_ids"],
        json!([ids[1], ids[3]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psa_errors_map_to_the_error_cases() {
    let host = host().await;
    let psa = PsaStandin::start(PSA_TOKEN).await.unwrap();
    connect_psa(&host, &psa).await;
    let project = host
        .ok(
            "psa",
            "upsert-project",
            json!({"external_id": "crm-9", "name": "Umbrella"}),
        )
        .await;

    let roles = |hours: f64| json!({"project_id": project["id"], "roles": [{"id": "qa", "name": "QA", "hours": hours}]});
    for (operation, input, code, says) in [
        // 404
        (
            "get-project",
            json!({"id": "9999"}),
            "upstream_not_found",
            "project 9999 not found",
        ),
        (
            "activate-project",
            json!({"external_id": "nobody"}),
            "upstream_not_found",
            "nobody",
        ),
        // 422, naming the field: nested, and of which role.
        (
            "upsert-project",
            json!({"external_id": "crm-9", "name": "Umbrella",
                   "budget": {"amount": 10.0, "currency": "usd"}}),
            "invalid_input",
            "`budget.currency`",
        ),
        (
            "add-roles",
            roles(0.0),
            "invalid_input",
            "roles[0] (`qa`): status 422: the PSA refused the request: `hours`",
        ),
        // Input the connector refuses before any request.
        (
            "get-project",
            json!({"id": "1", "external_id": "x"}),
            "invalid_input",
            "exactly one",
        ),
        (
            "get-project",
            json!({"idd": "1"}),
            "invalid_input",
            "unknown field `idd`",
        ),
        (
            "read",
            json!({"stream": "invoices"}),
            "invalid_input",
            "approved-time-entries",
        ),
    ] {
        host.refused("psa", operation, input, code, says).await;
    }

    // 401, 500, 429: played by the stand-in.
    assert_played_failures(
        &host,
        "psa",
        ("get-project", json!({"id": project["id"]})),
        |m| psa.misbehave(m),
    )
    .await;
}

// ---------------------------------------------------------------- proposal tool

/// A `POST` straight to the proposal stand-in.
async fn proposal_api(proposals: &ProposalStandin, path: &str) -> Value {
    let url = format!("{}/public/v1{path}", proposals.base_url());
    let key = format!("API-Key {PROPOSAL_KEY}");
    standin_call(
        reqwest::Client::new()
            .post(url)
            .header("authorization", key),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_are_created_listed_and_accepted_through_signed_webhooks() {
    let host = host().await;
    let tool = ProposalStandin::start(PROPOSAL_KEY).await.unwrap();
    let answer = host
        .put(
            "/v1/connections/proposal",
            json!({
                "plugin": "proposal",
                "config": {"base_url": tool.base_url(), "page_size": "2"},
                "auth": {"type": "api_key", "header": "Authorization",
                         "value": format!("API-Key {PROPOSAL_KEY}")},
                "allowed_hosts": [tool.host()], "private_hosts": [tool.host()],
                "webhook": {"scheme": {"generic_hmac": {"header": "x-proposal-signature",
                                                        "prefix": "sha256=", "encoding": "hex"}},
                            "secret": PROPOSAL_SECRET},
            }),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    host.check("proposal").await;

    let mut ids = Vec::new();
    for (name, deal) in [
        ("Acme SOW", "9876543201"),
        ("Globex SOW", "9876543202"),
        ("Initech SOW", "9876543203"),
    ] {
        let created = host
            .ok(
                "proposal",
                "create-proposal",
                json!({"name": name, "recipients": [{"email": "cfo@client.example", "first_name": "Ann"}],
                       "grand_total": {"amount": 120000.0, "currency": "USD"},
                       "metadata": {"hubspot_deal_id": deal}}),
            )
            .await;
        assert_eq!(created["status"], "proposal.draft");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let one = host
        .ok("proposal", "get-proposal", json!({"id": ids[1]}))
        .await;
    assert_eq!(one["metadata"], json!({"hubspot_deal_id": "9876543202"}));
    // Pages of two; a short page is the last.
    let first = host.ok("proposal", "list-proposals", json!({})).await;
    assert_eq!(first["proposals"].as_array().unwrap().len(), 2);
    assert_eq!(first["next_page"], 2);
    let second = host
        .ok("proposal", "list-proposals", json!({"page": 2}))
        .await;
    assert_eq!(second["proposals"][0]["id"], ids[2].as_str());
    assert!(second.get("next_page").is_none(), "{second}");
    let page = host.read("proposal", "proposals", None).await;
    assert_eq!(page["next_cursor"], "2");
    let last = host.read("proposal", "proposals", Some("2")).await;
    assert_eq!(
        (
            last["records"].as_array().unwrap().len(),
            last["done"].clone()
        ),
        (1, json!(true))
    );

    // The client accepts: the tool signs its webhook, the host checks the
    // signature and the connector makes the event.
    tool.subscribe_webhooks(
        &format!("{}/v1/webhooks/proposal", host.base),
        PROPOSAL_SECRET,
    );
    proposal_api(&tool, &format!("/proposals/{}/send", ids[0])).await;
    let sent = host
        .ok(
            "proposal",
            "list-proposals",
            json!({"status": "proposal.sent"}),
        )
        .await;
    assert_eq!(sent["proposals"][0]["id"], ids[0].as_str());
    tool.accept(&ids[0]).unwrap();
    let delivery = delivered(|| tool.webhooks(), 1).await.remove(0);
    assert_eq!(delivery.status, Some(200));
    let again = host.webhook("proposal", &delivery, &delivery.body).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    let event = &again.body["events"][0];
    assert_eq!(event["type"], "proposal.accepted");
    assert_eq!(event["id"], "evt_0001");
    assert_eq!(event["source"], "proposal/proposal");
    assert_eq!(event["subject"], ids[0].as_str());
    assert_eq!(event["data"]["proposalId"], ids[0].as_str());
    assert_eq!(
        event["data"]["metadata"],
        json!({"hubspot_deal_id": "9876543201"})
    );
    assert_eq!(event["data"]["proposal"]["status"], "proposal.accepted");
    // Altered on the way: refused before the connector sees it.
    let forged = delivery.body.replace("9876543201", "9876543209");
    let refused = host.webhook("proposal", &delivery, &forged).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "invalid_signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposal_errors_map_to_the_error_cases() {
    let host = host().await;
    let tool = ProposalStandin::start(PROPOSAL_KEY).await.unwrap();
    let spec = |key: &str| {
        json!({
            "plugin": "proposal",
            "config": {"base_url": tool.base_url()},
            "auth": {"type": "api_key", "header": "Authorization", "value": format!("API-Key {key}")},
            "allowed_hosts": [tool.host()], "private_hosts": [tool.host()],
        })
    };
    assert_eq!(
        host.put("/v1/connections/proposal", spec(PROPOSAL_KEY))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        host.put("/v1/connections/revoked", spec("revoked-key"))
            .await
            .status,
        StatusCode::CREATED
    );

    for (connection, operation, input, code, says) in [
        (
            "revoked",
            "list-proposals",
            json!({}),
            "upstream_unauthorized",
            "(authentication_error)",
        ),
        (
            "proposal",
            "get-proposal",
            json!({"id": "prop_9999"}),
            "upstream_not_found",
            "Not found.",
        ),
        (
            "proposal",
            "create-proposal",
            json!({"name": "SOW", "recipients": [{"email": "not-an-address"}]}),
            "invalid_input",
            "`recipients[0].email`: \"not-an-address\" is not an e-mail address",
        ),
        (
            "proposal",
            "create-proposal",
            json!({"name": "SOW", "recipients": []}),
            "invalid_input",
            "`recipients`: needs at least one recipient",
        ),
        (
            "proposal",
            "list-proposals",
            json!({"count": 500}),
            "invalid_input",
            "`count`",
        ),
    ] {
        host.refused(connection, operation, input, code, says).await;
    }
    assert_played_failures(&host, "proposal", ("list-proposals", json!({})), |m| {
        tool.misbehave(m)
    })
    .await;
}

// ---------------------------------------------------------------- contract tool

/// Pushes the contract connector's package to the running host, as
/// `junction plugin push` does.
async fn push_contract_connector(host: &Host) {
    let package = Package::new(shipped::CONTRACT_MANIFEST, shipped::CONTRACT_CONNECTOR).to_bytes();
    let _first = LOADING.lock().await;
    let pushed = host.send(Method::POST, "/v1/plugins", package, &[]).await;
    assert_eq!(pushed.status, StatusCode::CREATED, "{}", pushed.body);
    assert_eq!(pushed.body["name"], "contract");
}

async fn connect_contract(host: &Host, tool: &ContractStandin, name: &str, account: &str) {
    let answer = host
        .put(
            &format!("/v1/connections/{name}"),
            json!({
                "plugin": "contract",
                "config": {"base_url": tool.base_url(), "account_id": account, "page_size": "2"},
                "auth": {"type": "bearer", "token": CONTRACT_TOKEN},
                "allowed_hosts": [tool.host()], "private_hosts": [tool.host()],
                "webhook": {"scheme": {"generic_hmac": {"header": "x-docusign-signature-1",
                                                        "encoding": "base64"}},
                            "secret": CONTRACT_SECRET},
            }),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
}

fn contract(title: &str, reference: &str) -> Value {
    json!({"title": title, "externalReference": reference, "status": "sent",
           "signers": [{"name": "Ann Client", "email": "ann@client.example"}],
           "value": {"amount": 120000.0, "currency": "USD"}})
}

const ACTIVATE_ON_SIGNATURE: &str = r#"
description = "a signed contract moves its PSA project to active"
trigger = { type = "event", connection = "contract", event = "contract.signed" }

[[steps]]
id = "activate"
connection = "psa"
operation = "activate-project"
input = "{external_id: .trigger.data.externalReference}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_connector_pushed_to_a_running_host_activates_the_project_when_signed() {
    let host = host().await;
    let psa = PsaStandin::start(PSA_TOKEN).await.unwrap();
    let tool = ContractStandin::start(CONTRACT_TOKEN).await.unwrap();
    connect_psa(&host, &psa).await;
    let project = host
        .ok(
            "psa",
            "upsert-project",
            json!({"external_id": "hubspot-9876543201", "name": "Acme rollout"}),
        )
        .await;
    assert_eq!(project["status"], "pending");

    // Hot-load: the host was running without it.
    let names = |plugins: Value| -> Vec<String> {
        plugins["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(!names(host.get("/v1/plugins").await).contains(&"contract".to_owned()));
    push_contract_connector(&host).await;
    assert!(names(host.get("/v1/plugins").await).contains(&"contract".to_owned()));
    connect_contract(
        &host,
        &tool,
        "contract",
        junction_standins::contract::ACCOUNT_ID,
    )
    .await;
    host.check("contract").await;
    let deployed = host
        .send(
            Method::PUT,
            "/v1/flows/contract-signed-activates-project",
            ACTIVATE_ON_SIGNATURE.as_bytes().to_vec(),
            &[],
        )
        .await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.body);

    let created = host
        .ok(
            "contract",
            "create-contract",
            contract("Acme MSA", "hubspot-9876543201"),
        )
        .await;
    assert_eq!(created["status"], "sent");
    let id = created["contractId"].as_str().unwrap().to_owned();
    let read = host
        .ok("contract", "get-contract", json!({"contractId": id}))
        .await;
    assert_eq!(read["externalReference"], "hubspot-9876543201");
    assert_eq!(read["signers"][0]["email"], "ann@client.example");

    // The client signs: the tool's webhook reaches the host, signed.
    tool.subscribe_webhooks(
        &format!("{}/v1/webhooks/contract", host.base),
        CONTRACT_SECRET,
    );
    tool.sign(&id).unwrap();
    let delivery = delivered(|| tool.webhooks(), 1).await.remove(0);
    let run = eventually(
        "the run finishes",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || async {
            let runs = host
                .get("/v1/runs?flow=contract-signed-activates-project")
                .await;
            match runs["runs"].as_array().unwrap().first() {
                Some(run) if run["status"] != "pending" && run["status"] != "running" => {
                    Ok(run.clone())
                }
                _ => Err(format!("{runs}")),
            }
        },
    )
    .await;
    assert_eq!(run["status"], "completed", "{run}");
    let activated = host
        .ok(
            "psa",
            "get-project",
            json!({"external_id": "hubspot-9876543201"}),
        )
        .await;
    assert_eq!(activated["status"], "active");

    // Delivered again (the tool retries when it misses an answer): the same
    // event, verified again, starts no second run.
    let again = host.webhook("contract", &delivery, &delivery.body).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    let event = &again.body["events"][0];
    assert_eq!(event["type"], "contract.signed");
    assert_eq!(event["id"], format!("{id}:signed"));
    assert_eq!(event["subject"], id.as_str());
    assert_eq!(event["data"]["contractId"], id.as_str());
    assert_eq!(event["data"]["externalReference"], "hubspot-9876543201");
    assert_eq!(again.body["runs"][0]["duplicate"], true, "{}", again.body);
    let runs = host
        .get("/v1/runs?flow=contract-signed-activates-project")
        .await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
    let forged = delivery
        .body
        .replace("hubspot-9876543201", "hubspot-9876543209");
    let refused = host.webhook("contract", &delivery, &forged).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contracts_page_void_and_map_errors_to_the_error_cases() {
    let host = host().await;
    let tool = ContractStandin::start(CONTRACT_TOKEN).await.unwrap();
    push_contract_connector(&host).await;
    connect_contract(
        &host,
        &tool,
        "contract",
        junction_standins::contract::ACCOUNT_ID,
    )
    .await;
    connect_contract(
        &host,
        &tool,
        "elsewhere",
        "00000000-0000-0000-0000-000000000000",
    )
    .await;

    let mut ids = Vec::new();
    for reference in ["crm-1", "crm-2", "crm-3"] {
        let created = host
            .ok("contract", "create-contract", contract("MSA", reference))
            .await;
        ids.push(created["contractId"].as_str().unwrap().to_owned());
    }
    // Two a page from `start_position`; the last page has no `nextUri`.
    let first = host.read("contract", "contracts", None).await;
    assert_eq!(first["records"].as_array().unwrap().len(), 2);
    assert_eq!(first["next_cursor"], "2");
    let last = host.read("contract", "contracts", Some("2")).await;
    assert_eq!(last["records"][0]["contractId"], ids[2].as_str());
    assert_eq!(last["done"], true);
    // void-contract undoes a create, fed `{input, output}` as a compensation.
    let input = contract("MSA", "crm-4");
    let output = host.ok("contract", "create-contract", input.clone()).await;
    let voided = host
        .ok(
            "contract",
            "void-contract",
            json!({"input": input, "output": output}),
        )
        .await;
    assert_eq!(voided["status"], "voided");
    assert_eq!(voided["voidedReason"], "withdrawn");

    let voided_again = host
        .ok(
            "contract",
            "void-contract",
            json!({"contractId": voided["contractId"]}),
        )
        .await;
    assert_eq!(
        voided_again["status"], "voided",
        "voiding again changes nothing"
    );
    for (connection, operation, input, code, says) in [
        (
            "contract",
            "get-contract",
            json!({"contractId": "no-such-contract"}),
            "upstream_not_found",
            "(CONTRACT_DOES_NOT_EXIST)",
        ),
        (
            "contract",
            "create-contract",
            json!({"title": "MSA", "signers": [{"name": "Ann", "email": "ann"}]}),
            "invalid_input",
            "(INVALID_REQUEST_PARAMETER): The request contained at least one invalid parameter. \
             signers[0].email",
        ),
        (
            "contract",
            "create-contract",
            json!({"title": "MSA", "signers": [], "status": "completed"}),
            "invalid_input",
            "unknown variant `completed`",
        ),
        (
            "elsewhere",
            "get-contract",
            json!({"contractId": ids[0]}),
            "upstream_unauthorized",
            "`account_id` (USER_LACKS_MEMBERSHIP)",
        ),
    ] {
        host.refused(connection, operation, input, code, says).await;
    }
    assert_played_failures(
        &host,
        "contract",
        ("get-contract", json!({"contractId": ids[0]})),
        |m| tool.misbehave(m),
    )
    .await;
}
