//! The Jira stand-in, driven over HTTP the way a connector would.

// The shared helpers below are test code too; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use junction_standins::{JiraStandin, Misbehaviour};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

const EMAIL: &str = "ops@example.com";
const TOKEN: &str = "s3cret-token";

struct Fixture {
    jira: JiraStandin,
    client: Client,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture {
            jira: JiraStandin::start(EMAIL, TOKEN).await.unwrap(),
            client: Client::new(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.jira.base_url()))
            .basic_auth(EMAIL, Some(TOKEN))
    }

    async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn create_project(&self, key: &str, name: &str) -> Response {
        self.post(
            "/rest/api/3/project",
            json!({"key": key, "name": name, "projectTypeKey": "software", "leadAccountId": LEAD}),
        )
        .await
    }

    async fn create_issue(&self, fields: Value) -> Response {
        self.post("/rest/api/3/issue", json!({ "fields": fields }))
            .await
    }
}

async fn json_of(response: Response) -> Value {
    response.json().await.unwrap()
}

fn field_errors(errors: Value) -> Value {
    json!({"errorMessages": [], "errors": errors})
}

fn adf(text: &str) -> Value {
    json!({
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]
    })
}

fn not_authenticated() -> Value {
    json!({
        "errorMessages": ["You are not authenticated. Authentication required to perform this operation."],
        "errors": {}
    })
}

#[tokio::test]
async fn base_url_and_host_name_the_loopback_port() {
    let f = Fixture::new().await;
    let host = f.jira.host();
    assert!(host.starts_with("127.0.0.1:"), "{host}");
    assert_ne!(host, "127.0.0.1:0");
    assert_eq!(f.jira.base_url(), format!("http://{host}"));
}

#[tokio::test]
async fn myself_describes_the_authenticated_user() {
    let f = Fixture::new().await;
    let response = f.get("/rest/api/3/myself").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json_of(response).await,
        json!({
            "accountId": "5b10a2844c20165700ede21g",
            "emailAddress": EMAIL,
            "displayName": "Junction Demo",
            "active": true
        })
    );
}

#[tokio::test]
async fn requests_without_valid_basic_auth_are_401() {
    let f = Fixture::new().await;
    let url = format!("{}/rest/api/3/myself", f.jira.base_url());
    let attempts = [
        f.client.get(&url),
        f.client.get(&url).basic_auth(EMAIL, Some("wrong")),
        f.client
            .get(&url)
            .basic_auth("someone@else.com", Some(TOKEN)),
        f.client.get(&url).bearer_auth(TOKEN),
        f.client
            .get(&url)
            .header("authorization", "Basic !!not-base64!!"),
        // Unknown paths are not revealed to anonymous callers either.
        f.client
            .get(format!("{}/rest/api/3/nowhere", f.jira.base_url())),
    ];
    for attempt in attempts {
        let response = attempt.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(json_of(response).await, not_authenticated());
    }
    assert_eq!(f.get("/rest/api/3/myself").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn creates_and_reads_a_project() {
    let f = Fixture::new().await;
    let base = f.jira.base_url();
    let response = f
        .post(
            "/rest/api/3/project",
            json!({
                "key": "ACME",
                "name": "Acme rollout",
                "projectTypeKey": "software",
                "leadAccountId": "5b10a2844c20165700ede21g",
                "description": "Delivery for Acme"
            }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        json_of(response).await,
        json!({"self": format!("{base}/rest/api/3/project/10000"), "id": 10000, "key": "ACME"})
    );

    let second = f.create_project("BETA", "Beta").await;
    assert_eq!(json_of(second).await["id"], 10001);

    let expected = json!({
        "self": format!("{base}/rest/api/3/project/10000"),
        "id": "10000",
        "key": "ACME",
        "name": "Acme rollout",
        "projectTypeKey": "software",
        "description": "Delivery for Acme",
        "lead": {"accountId": "5b10a2844c20165700ede21g"}
    });
    for key_or_id in ["ACME", "10000"] {
        let response = f.get(&format!("/rest/api/3/project/{key_or_id}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(json_of(response).await, expected);
    }

    let projects = f.jira.projects();
    assert_eq!(projects.len(), 2);
    assert_eq!(projects[0], expected);
    assert_eq!(
        projects[1],
        json!({
            "self": format!("{base}/rest/api/3/project/10001"),
            "id": "10001",
            "key": "BETA",
            "name": "Beta",
            "projectTypeKey": "software",
            "lead": {"accountId": LEAD}
        })
    );
}

/// The account id of the stand-in's one user.
const LEAD: &str = junction_standins::jira::ACCOUNT_ID;

#[tokio::test]
async fn a_project_without_a_valid_lead_is_400_as_on_jira_cloud() {
    let f = Fixture::new().await;
    for body in [
        json!({"key": "ACME", "name": "Acme", "projectTypeKey": "software"}),
        json!({"key": "ACME", "name": "Acme", "projectTypeKey": "software", "leadAccountId": "nobody"}),
    ] {
        let response = f.post("/rest/api/3/project", body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            json_of(response).await,
            json!({"errorMessages": [], "errors": {"projectLead": "You must specify a valid project lead."}})
        );
    }
    assert!(f.jira.projects().is_empty());
}

#[tokio::test]
async fn unknown_project_is_404() {
    let f = Fixture::new().await;
    let response = f.get("/rest/api/3/project/NOPE").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        json_of(response).await,
        json!({"errorMessages": ["No project could be found with key 'NOPE'."], "errors": {}})
    );
}

#[tokio::test]
async fn duplicate_project_key_is_400() {
    let f = Fixture::new().await;
    assert_eq!(
        f.create_project("ACME", "Acme").await.status(),
        StatusCode::CREATED
    );
    let response = f.create_project("ACME", "Acme again").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json_of(response).await,
        field_errors(json!({"projectKey": "A project with that project key already exists."}))
    );
    assert_eq!(f.jira.projects().len(), 1);
}

#[tokio::test]
async fn project_validation_errors() {
    let f = Fixture::new().await;
    let key_message = "Project keys must start with an uppercase letter, followed by one or more uppercase alphanumeric characters.";
    for key in ["acme", "A", "1ACME", "ACME-1", "ABCDEFGHIJK"] {
        let response = f.create_project(key, "Acme").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{key}");
        assert_eq!(
            json_of(response).await,
            field_errors(json!({ "projectKey": key_message })),
            "{key}"
        );
    }

    let missing_name = f
        .post(
            "/rest/api/3/project",
            json!({"key": "ACME", "projectTypeKey": "software", "leadAccountId": LEAD}),
        )
        .await;
    assert_eq!(missing_name.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json_of(missing_name).await,
        field_errors(json!({"projectName": "You must specify a valid project name."}))
    );

    assert_eq!(
        f.create_project("ACME", "Acme").await.status(),
        StatusCode::CREATED
    );
    let same_name = f.create_project("OTHER", "Acme").await;
    assert_eq!(same_name.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json_of(same_name).await,
        field_errors(json!({"projectName": "A project with that name already exists."}))
    );

    let bad_type = f
        .post(
            "/rest/api/3/project",
            json!({"key": "BETA", "name": "Beta", "projectTypeKey": "kanban", "leadAccountId": LEAD}),
        )
        .await;
    assert_eq!(bad_type.status(), StatusCode::BAD_REQUEST);
    let body = json_of(bad_type).await;
    assert!(body["errors"]["projectTypeKey"].is_string(), "{body}");
    for (key, kind) in [
        ("SW", "software"),
        ("SD", "service_desk"),
        ("BZ", "business"),
    ] {
        let created = f
            .post(
                "/rest/api/3/project",
                json!({"key": key, "name": kind, "projectTypeKey": kind, "leadAccountId": LEAD}),
            )
            .await;
        assert_eq!(created.status(), StatusCode::CREATED, "{kind}");
    }
    assert_eq!(f.jira.projects().len(), 4);
}

#[tokio::test]
async fn creates_and_reads_issues() {
    let f = Fixture::new().await;
    let base = f.jira.base_url();
    f.create_project("ACME", "Acme").await;
    f.create_project("BETA", "Beta").await;

    let first = f
        .create_issue(json!({
            "project": {"key": "ACME"},
            "summary": "Kick-off workshop",
            "issuetype": {"name": "Task"},
            "description": adf("Agenda to follow")
        }))
        .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(
        json_of(first).await,
        json!({"id": "10001", "key": "ACME-1", "self": format!("{base}/rest/api/3/issue/10001")})
    );

    // By project id, as a string or a number; numbers are per project, ids global.
    let by_id = f
        .create_issue(json!({
            "project": {"id": "10001"},
            "summary": "Beta epic",
            "issuetype": {"name": "Epic"}
        }))
        .await;
    assert_eq!(
        json_of(by_id).await,
        json!({"id": "10002", "key": "BETA-1", "self": format!("{base}/rest/api/3/issue/10002")})
    );
    let numeric_id = f
        .create_issue(json!({
            "project": {"id": 10000},
            "summary": "Second",
            "issuetype": {"name": "Bug"},
            "description": null
        }))
        .await;
    assert_eq!(json_of(numeric_id).await["key"], "ACME-2");

    for key_or_id in ["ACME-1", "10001"] {
        let response = f.get(&format!("/rest/api/3/issue/{key_or_id}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        let issue = json_of(response).await;
        assert_eq!(issue["id"], "10001");
        assert_eq!(issue["key"], "ACME-1");
        assert_eq!(issue["self"], format!("{base}/rest/api/3/issue/10001"));
        let fields = &issue["fields"];
        assert_eq!(fields["summary"], "Kick-off workshop");
        assert_eq!(fields["status"], json!({"name": "To Do"}));
        assert_eq!(fields["project"], json!({"id": "10000", "key": "ACME"}));
        assert_eq!(fields["issuetype"], json!({"name": "Task"}));
        assert_eq!(fields["description"], adf("Agenda to follow"));
        let created = fields["created"].as_str().unwrap();
        assert!(is_rfc3339_utc(created), "{created}");
    }

    let issues = f.jira.issues();
    assert_eq!(issues.len(), 3);
    assert_eq!(issues[1]["key"], "BETA-1");
    assert_eq!(issues[2]["key"], "ACME-2");
    assert_eq!(issues[2]["fields"]["description"], Value::Null);
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`
fn is_rfc3339_utc(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 24
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b'T',
            13 | 16 => *b == b':',
            19 => *b == b'.',
            23 => *b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

#[tokio::test]
async fn unknown_issue_is_404() {
    let f = Fixture::new().await;
    for key_or_id in ["ACME-9", "10001"] {
        let response = f.get(&format!("/rest/api/3/issue/{key_or_id}")).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            json_of(response).await,
            json!({
                "errorMessages": ["Issue does not exist or you do not have permission to see it."],
                "errors": {}
            })
        );
    }
}

#[tokio::test]
async fn issue_validation_errors() {
    let f = Fixture::new().await;
    f.create_project("ACME", "Acme").await;
    let cases = [
        (
            json!({"project": {"key": "ACME"}, "issuetype": {"name": "Task"}}),
            json!({"summary": "You must specify a summary of the issue."}),
        ),
        (
            json!({"project": {"key": "NOPE"}, "summary": "x", "issuetype": {"name": "Task"}}),
            json!({"project": "valid project is required"}),
        ),
        (
            json!({"project": {"id": "99999"}, "summary": "x", "issuetype": {"name": "Task"}}),
            json!({"project": "valid project is required"}),
        ),
        (
            json!({
                "project": {"key": "ACME"}, "summary": "x", "issuetype": {"name": "Task"},
                "description": "plain text is not ADF"
            }),
            json!({"description": "Operation value must be an Atlassian Document (see the Atlassian Document Format)"}),
        ),
        (
            json!({"project": {"key": "ACME"}, "summary": "x", "issuetype": {"name": "Chore"}}),
            json!({"issuetype": "Specify a valid issue type"}),
        ),
        (
            json!({"project": {"key": "ACME"}, "summary": "x"}),
            json!({"issuetype": "Specify an issue type"}),
        ),
    ];
    for (fields, errors) in cases {
        let response = f.create_issue(fields.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{fields}");
        assert_eq!(json_of(response).await, field_errors(errors), "{fields}");
    }
    assert!(f.jira.issues().is_empty());

    // Every issue type Jira ships by default is accepted.
    for kind in ["Task", "Story", "Bug", "Epic"] {
        let response = f
            .create_issue(
                json!({"project": {"key": "ACME"}, "summary": kind, "issuetype": {"name": kind}}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "{kind}");
    }
    assert_eq!(f.jira.issues()[3]["key"], "ACME-4");
}

#[tokio::test]
async fn unknown_path_is_404_and_bad_json_is_400() {
    let f = Fixture::new().await;
    let response = f.get("/rest/api/3/dashboard").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        json_of(response).await,
        json!({"errorMessages": ["Not found"], "errors": {}})
    );

    for path in ["/rest/api/3/project", "/rest/api/3/issue"] {
        let response = f
            .request(Method::POST, path)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let body = json_of(response).await;
        assert_eq!(body["errors"], json!({}));
        let message = body["errorMessages"][0].as_str().unwrap();
        assert!(message.starts_with("Unexpected character"), "{message}");
    }
}

#[tokio::test]
async fn records_every_request() {
    let f = Fixture::new().await;
    f.create_project("ACME", "Acme").await;
    f.client
        .get(format!(
            "{}/rest/api/3/myself?expand=groups",
            f.jira.base_url()
        ))
        .header("X-Trace", "abc")
        .send()
        .await
        .unwrap();

    let requests = f.jira.requests();
    assert_eq!(requests.len(), 2);
    let create = &requests[0];
    assert_eq!(create.method, "POST");
    assert_eq!(create.path, "/rest/api/3/project");
    assert_eq!(create.query, None);
    assert_eq!(create.header("Content-Type"), Some("application/json"));
    let expected_auth = format!("Basic {}", "b3BzQGV4YW1wbGUuY29tOnMzY3JldC10b2tlbg==");
    assert_eq!(
        create.headers.get("authorization"),
        Some(&expected_auth),
        "headers are keyed by lower-case name"
    );
    assert_eq!(
        create.body_json(),
        Some(
            json!({"key": "ACME", "name": "Acme", "projectTypeKey": "software", "leadAccountId": LEAD})
        )
    );

    let anonymous = &requests[1];
    assert_eq!(anonymous.method, "GET");
    assert_eq!(anonymous.path, "/rest/api/3/myself");
    assert_eq!(anonymous.query.as_deref(), Some("expand=groups"));
    assert_eq!(anonymous.header("x-trace"), Some("abc"));
    assert_eq!(anonymous.header("authorization"), None);
    assert!(anonymous.body.is_empty());
}

#[tokio::test]
async fn server_error_misbehaviour() {
    let f = Fixture::new().await;
    f.jira.misbehave(Misbehaviour::ServerError { times: 2 });
    for _ in 0..2 {
        let response = f.create_project("ACME", "Acme").await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            json_of(response).await,
            json!({"errorMessages": ["Internal server error"], "errors": {}})
        );
    }
    assert!(
        f.jira.projects().is_empty(),
        "a failed request has no effect"
    );
    assert_eq!(
        f.create_project("ACME", "Acme").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(f.jira.requests().len(), 3);
}

#[tokio::test]
async fn rate_limited_misbehaviour() {
    let f = Fixture::new().await;
    f.jira.misbehave(Misbehaviour::RateLimited {
        times: 1,
        retry_after_secs: 30,
    });
    let response = f.get("/rest/api/3/myself").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let headers = response.headers();
    assert_eq!(headers["retry-after"], "30");
    assert_eq!(headers["x-ratelimit-limit"], "100");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    let reset = headers["x-ratelimit-reset"].to_str().unwrap();
    assert!(is_rfc3339_utc(reset), "{reset}");
    assert_eq!(
        json_of(response).await,
        json!({"errorMessages": ["Rate limit exceeded."], "errors": {}})
    );
    assert_eq!(f.get("/rest/api/3/myself").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn unauthorized_misbehaviour_refuses_valid_credentials() {
    let f = Fixture::new().await;
    f.jira.misbehave(Misbehaviour::Unauthorized { times: 1 });
    let response = f.get("/rest/api/3/myself").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(response).await, not_authenticated());
    assert_eq!(f.get("/rest/api/3/myself").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn latency_misbehaviour_delays_then_answers_normally() {
    let f = Fixture::new().await;
    f.jira.misbehave(Misbehaviour::Latency {
        times: 1,
        millis: 150,
    });
    let started = Instant::now();
    let response = f.create_project("ACME", "Acme").await;
    // A lower bound only: the server sleeps at least this long before it handles the request.
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(f.jira.projects().len(), 1);
}

#[tokio::test]
async fn misbehaviours_play_in_order_before_auth() {
    let f = Fixture::new().await;
    f.jira.misbehave(Misbehaviour::ServerError { times: 1 });
    f.jira.misbehave(Misbehaviour::RateLimited {
        times: 1,
        retry_after_secs: 1,
    });
    // Anonymous requests get the queued failures too: they apply before authentication.
    let url = format!("{}/rest/api/3/myself", f.jira.base_url());
    let statuses = [
        f.client.get(&url).send().await.unwrap().status(),
        f.client.get(&url).send().await.unwrap().status(),
        f.client.get(&url).send().await.unwrap().status(),
    ];
    assert_eq!(
        statuses,
        [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::UNAUTHORIZED
        ]
    );
}

#[tokio::test]
async fn clones_share_one_server_and_store() {
    let f = Fixture::new().await;
    let clone = f.jira.clone();
    f.create_project("ACME", "Acme").await;
    assert_eq!(clone.base_url(), f.jira.base_url());
    assert_eq!(clone.projects(), f.jira.projects());
    clone.misbehave(Misbehaviour::ServerError { times: 1 });
    assert_eq!(
        f.get("/rest/api/3/myself").await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(clone.requests().len(), 2);
}

#[tokio::test]
async fn shutdown_stops_the_server_for_every_clone() {
    let f = Fixture::new().await;
    assert_eq!(f.get("/rest/api/3/myself").await.status(), StatusCode::OK);
    let clone = f.jira.clone();
    clone.shutdown().await;
    clone.shutdown().await; // idempotent
    assert!(
        tokio::net::TcpStream::connect(f.jira.host()).await.is_err(),
        "the listener is closed once shutdown returns"
    );
    assert!(
        Client::new()
            .get(format!("{}/rest/api/3/myself", f.jira.base_url()))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let jira = JiraStandin::start(EMAIL, TOKEN).await.unwrap();
    let host = jira.host();
    let clone = jira.clone();
    drop(jira);
    assert!(
        tokio::net::TcpStream::connect(&host).await.is_ok(),
        "a clone keeps it running"
    );
    drop(clone);
    // The serve loop ends on its own task once it sees the signal; poll with a deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(&host).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "server still accepting on {host}"
        );
        tokio::task::yield_now().await;
    }
}
