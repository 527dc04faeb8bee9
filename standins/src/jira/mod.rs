//! A stand-in of the Jira Cloud platform REST API v3: the current user, projects and issues.
//!
//! Endpoints (all under `/rest/api/3`, all behind Basic authentication with the email and API
//! token given to [`JiraStandin::start`]):
//!
//! | method and path | answer |
//! | --- | --- |
//! | `GET /myself` | `200` the authenticated user |
//! | `POST /project` | `201 {"self","id","key"}`; `400` with field errors, `projectLead` when `leadAccountId` is not the site's user, as Jira Cloud refuses a project without a lead |
//! | `GET /project/{keyOrId}` | `200` the project; `404` |
//! | `POST /issue` | `201 {"id","key","self"}`; `400` with field errors |
//! | `GET /issue/{keyOrId}` | `200` the issue; `404` |
//!
//! Errors have Jira's shape, `{"errorMessages":[...],"errors":{field: message}}`: a missing or
//! wrong `Authorization` header is a `401`, an unknown path a `404`, a body that is not JSON a
//! `400`. Project ids count up from `10000`, issue ids from `10001`, and issue numbers from 1 in
//! each project (`ACME-1`, `ACME-2`, ...).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use crate::server::{FaultResponses, StandinCore, lock, rfc3339_millis, standin_handle};

/// The account id `GET /rest/api/3/myself` reports for the one user the stand-in knows.
pub const ACCOUNT_ID: &str = "5b10a2844c20165700ede21g";

/// The display name `GET /rest/api/3/myself` reports.
pub const DISPLAY_NAME: &str = "Junction Demo";

/// The rate limit the stand-in advertises in `X-RateLimit-Limit` when it plays
/// [`Misbehaviour::RateLimited`](crate::Misbehaviour::RateLimited).
pub const RATE_LIMIT: u32 = 100;

const NOT_AUTHENTICATED: &str =
    "You are not authenticated. Authentication required to perform this operation.";
const PROJECT_TYPE_KEYS: [&str; 3] = ["software", "service_desk", "business"];
const ISSUE_TYPES: [&str; 4] = ["Task", "Story", "Bug", "Epic"];
const FIRST_PROJECT_ID: u64 = 10000;
const FIRST_ISSUE_ID: u64 = 10001;

/// A running Jira Cloud stand-in on `127.0.0.1`.
///
/// Clones share one server and one store. The server stops when the last clone is dropped, or
/// earlier through [`JiraStandin::shutdown`].
#[derive(Clone)]
pub struct JiraStandin {
    core: Arc<StandinCore>,
    state: Arc<JiraState>,
}

standin_handle!(
    JiraStandin,
    "a Jira connector",
    "The Jira error bodies are: `500 {\"errorMessages\":[\"Internal server error\"],\"errors\":{}}`; `429 {\"errorMessages\":[\"Rate limit exceeded.\"],\"errors\":{}}` with `Retry-After`, `X-RateLimit-Limit` ([`RATE_LIMIT`]), `X-RateLimit-Remaining: 0` and `X-RateLimit-Reset` (RFC 3339 time of the reset); and the `401` of a request without credentials."
);

impl JiraStandin {
    /// Starts on 127.0.0.1 with an ephemeral port; accepts Basic auth for `email`/`api_token`.
    ///
    /// Must be called inside a Tokio runtime, which the server task then runs on.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start(email: &str, api_token: &str) -> anyhow::Result<JiraStandin> {
        let credentials = format!("{email}:{api_token}");
        let email = email.to_owned();
        let mut created_state = None;
        let core = StandinCore::start("jira", JiraFaults, |base_url| {
            let state = Arc::new(JiraState {
                base_url,
                email,
                credentials,
                store: Mutex::new(Store::default()),
            });
            created_state = Some(state.clone());
            router(state)
        })
        .await?;
        let state = created_state
            .ok_or_else(|| anyhow::anyhow!("the jira stand-in router was never built"))?;
        Ok(JiraStandin {
            core: Arc::new(core),
            state,
        })
    }

    /// The stored projects in creation order, each as `GET /rest/api/3/project/{id}` returns it.
    pub fn projects(&self) -> Vec<Value> {
        let store = lock(&self.state.store);
        store
            .projects
            .iter()
            .map(|p| p.to_json(&self.state.base_url))
            .collect()
    }

    /// The stored issues in creation order, each as `GET /rest/api/3/issue/{id}` returns it.
    pub fn issues(&self) -> Vec<Value> {
        let store = lock(&self.state.store);
        store
            .issues
            .iter()
            .map(|i| i.to_json(&self.state.base_url))
            .collect()
    }
}

/// What the handlers share: who may call and what has been created.
struct JiraState {
    base_url: String,
    email: String,
    /// `email:api_token`, as a Basic `Authorization` header carries it once decoded.
    credentials: String,
    store: Mutex<Store>,
}

#[derive(Default)]
struct Store {
    projects: Vec<Project>,
    issues: Vec<Issue>,
}

struct Project {
    id: u64,
    key: String,
    name: String,
    project_type_key: String,
    lead_account_id: Option<String>,
    description: Option<String>,
    /// The number of the last issue created in this project.
    last_issue_number: u64,
}

impl Project {
    fn self_url(&self, base_url: &str) -> String {
        format!("{base_url}/rest/api/3/project/{}", self.id)
    }

    /// The shape of `GET /project/{keyOrId}`: `lead` and `description` only when given at
    /// creation.
    fn to_json(&self, base_url: &str) -> Value {
        let mut project = json!({
            "self": self.self_url(base_url),
            "id": self.id.to_string(),
            "key": self.key,
            "name": self.name,
            "projectTypeKey": self.project_type_key,
        });
        if let Some(object) = project.as_object_mut() {
            if let Some(description) = &self.description {
                object.insert("description".into(), json!(description));
            }
            if let Some(lead) = &self.lead_account_id {
                object.insert("lead".into(), json!({ "accountId": lead }));
            }
        }
        project
    }
}

struct Issue {
    id: u64,
    key: String,
    project_id: u64,
    project_key: String,
    summary: String,
    issue_type: String,
    description: Option<Value>,
    created: String,
}

impl Issue {
    fn self_url(&self, base_url: &str) -> String {
        format!("{base_url}/rest/api/3/issue/{}", self.id)
    }

    fn to_json(&self, base_url: &str) -> Value {
        json!({
            "id": self.id.to_string(),
            "key": self.key,
            "self": self.self_url(base_url),
            "fields": {
                "summary": self.summary,
                "status": { "name": "To Do" },
                "project": { "id": self.project_id.to_string(), "key": self.project_key },
                "issuetype": { "name": self.issue_type },
                "description": self.description.clone().unwrap_or(Value::Null),
                "created": self.created,
            },
        })
    }
}

fn router(state: Arc<JiraState>) -> Router {
    Router::new()
        .route("/rest/api/3/myself", get(myself))
        .route("/rest/api/3/project", post(create_project))
        .route("/rest/api/3/project/{key_or_id}", get(get_project))
        .route("/rest/api/3/issue", post(create_issue))
        .route("/rest/api/3/issue/{key_or_id}", get(get_issue))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Layered after the fallbacks so an unauthenticated request to any path is a 401, as
        // Jira answers before it routes.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_basic_auth,
        ))
        .with_state(state)
}

/// A Jira error response: `{"errorMessages":[...],"errors":{...}}`.
fn jira_error(status: StatusCode, messages: &[&str], errors: Map<String, Value>) -> Response {
    (
        status,
        axum::Json(json!({ "errorMessages": messages, "errors": errors })),
    )
        .into_response()
}

fn field_errors(errors: Map<String, Value>) -> Response {
    jira_error(StatusCode::BAD_REQUEST, &[], errors)
}

fn unauthorized() -> Response {
    let mut response = jira_error(StatusCode::UNAUTHORIZED, &[NOT_AUTHENTICATED], Map::new());
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"protected-by-api-token\""),
    );
    response
}

struct JiraFaults;

impl FaultResponses for JiraFaults {
    fn server_error(&self) -> Response {
        jira_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &["Internal server error"],
            Map::new(),
        )
    }

    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        let reset = SystemTime::now() + Duration::from_secs(retry_after_secs);
        let mut response = jira_error(
            StatusCode::TOO_MANY_REQUESTS,
            &["Rate limit exceeded."],
            Map::new(),
        );
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        headers.insert("x-ratelimit-limit", HeaderValue::from(RATE_LIMIT));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(0u32));
        if let Ok(reset) = HeaderValue::from_str(&rfc3339_millis(reset)) {
            headers.insert("x-ratelimit-reset", reset);
        }
        response
    }

    fn unauthorized(&self) -> Response {
        unauthorized()
    }
}

async fn require_basic_auth(
    State(state): State<Arc<JiraState>>,
    request: Request,
    next: Next,
) -> Response {
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, encoded)| BASE64.decode(encoded.trim()).ok())
        .is_some_and(|decoded| decoded == state.credentials.as_bytes());
    if authorized {
        next.run(request).await
    } else {
        unauthorized()
    }
}

async fn not_found() -> Response {
    jira_error(StatusCode::NOT_FOUND, &["Not found"], Map::new())
}

async fn method_not_allowed() -> Response {
    jira_error(
        StatusCode::METHOD_NOT_ALLOWED,
        &["Method Not Allowed"],
        Map::new(),
    )
}

/// Parses a JSON request body, or answers `400` the way Jira's JSON parser does.
#[allow(clippy::result_large_err)] // the error is the response to send
fn parse_body(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|error| {
        let message = format!(
            "Unexpected character in the request body at line {}, column {}: {error}",
            error.line(),
            error.column()
        );
        jira_error(StatusCode::BAD_REQUEST, &[&message], Map::new())
    })
}

fn str_field<'a>(object: &'a Value, name: &str) -> Option<&'a str> {
    object.get(name).and_then(Value::as_str)
}

/// Whether `key` is a valid Jira project key: an uppercase letter then 1 to 9 uppercase letters
/// or digits.
fn is_valid_project_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && (2..=10).contains(&key.len())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Whether `value` is an Atlassian Document Format document: `{"type":"doc","version":1,
/// "content":[...]}`.
fn is_adf_document(value: &Value) -> bool {
    str_field(value, "type") == Some("doc")
        && value.get("version").and_then(Value::as_u64) == Some(1)
        && value.get("content").is_some_and(Value::is_array)
}

async fn myself(State(state): State<Arc<JiraState>>) -> Response {
    axum::Json(json!({
        "accountId": ACCOUNT_ID,
        "emailAddress": state.email,
        "displayName": DISPLAY_NAME,
        "active": true,
    }))
    .into_response()
}

async fn create_project(State(state): State<Arc<JiraState>>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let key = str_field(&body, "key").unwrap_or_default();
    let name = str_field(&body, "name").map(str::trim).unwrap_or_default();
    let project_type_key = str_field(&body, "projectTypeKey").unwrap_or_default();

    let mut store = lock(&state.store);
    let mut errors = Map::new();
    if !is_valid_project_key(key) {
        errors.insert(
            "projectKey".into(),
            json!(
                "Project keys must start with an uppercase letter, followed by one or more \
                 uppercase alphanumeric characters."
            ),
        );
    } else if store.projects.iter().any(|p| p.key == key) {
        errors.insert(
            "projectKey".into(),
            json!("A project with that project key already exists."),
        );
    }
    if name.is_empty() {
        errors.insert(
            "projectName".into(),
            json!("You must specify a valid project name."),
        );
    } else if store
        .projects
        .iter()
        .any(|p| p.name.eq_ignore_ascii_case(name))
    {
        errors.insert(
            "projectName".into(),
            json!("A project with that name already exists."),
        );
    }
    // Jira Cloud needs a lead: `leadAccountId` of a user of the site (the
    // deprecated `lead`, a user name, no longer resolves on Cloud).
    if str_field(&body, "leadAccountId") != Some(ACCOUNT_ID) {
        errors.insert(
            "projectLead".into(),
            json!("You must specify a valid project lead."),
        );
    }
    if !PROJECT_TYPE_KEYS.contains(&project_type_key) {
        errors.insert(
            "projectTypeKey".into(),
            json!(format!(
                "Invalid project type key specified. Valid project type keys are: {}.",
                PROJECT_TYPE_KEYS.join(", ")
            )),
        );
    }
    if !errors.is_empty() {
        return field_errors(errors);
    }

    let id = FIRST_PROJECT_ID + store.projects.len() as u64;
    let project = Project {
        id,
        key: key.to_owned(),
        name: name.to_owned(),
        project_type_key: project_type_key.to_owned(),
        lead_account_id: str_field(&body, "leadAccountId").map(str::to_owned),
        description: str_field(&body, "description").map(str::to_owned),
        last_issue_number: 0,
    };
    let created = json!({
        "self": project.self_url(&state.base_url),
        "id": id,
        "key": project.key,
    });
    store.projects.push(project);
    (StatusCode::CREATED, axum::Json(created)).into_response()
}

/// Finds a project by numeric id or by key.
fn find_project<'a>(projects: &'a [Project], key_or_id: &str) -> Option<&'a Project> {
    match key_or_id.parse::<u64>() {
        Ok(id) => projects.iter().find(|p| p.id == id),
        Err(_) => projects.iter().find(|p| p.key == key_or_id),
    }
}

async fn get_project(
    State(state): State<Arc<JiraState>>,
    Path(key_or_id): Path<String>,
) -> Response {
    let store = lock(&state.store);
    match find_project(&store.projects, &key_or_id) {
        Some(project) => axum::Json(project.to_json(&state.base_url)).into_response(),
        None => {
            let by = if key_or_id.parse::<u64>().is_ok() {
                "id"
            } else {
                "key"
            };
            let message = format!("No project could be found with {by} '{key_or_id}'.");
            jira_error(StatusCode::NOT_FOUND, &[&message], Map::new())
        }
    }
}

async fn create_issue(State(state): State<Arc<JiraState>>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let fields = body.get("fields").cloned().unwrap_or(Value::Null);
    // `{"key": "ACME"}` or `{"id": "10000"}` (a number is accepted too).
    let project_ref = fields.get("project");
    let project_key = project_ref.and_then(|p| str_field(p, "key"));
    let project_id = project_ref.and_then(|p| match p.get("id") {
        Some(Value::String(id)) => Some(id.clone()),
        Some(Value::Number(id)) => Some(id.to_string()),
        _ => None,
    });
    let summary = str_field(&fields, "summary").unwrap_or_default();
    let issue_type = fields
        .get("issuetype")
        .and_then(|t| str_field(t, "name"))
        .unwrap_or_default();
    let description = fields.get("description").filter(|d| !d.is_null());

    let mut store = lock(&state.store);
    let project_index = match (project_key, project_id) {
        (Some(key), _) => store.projects.iter().position(|p| p.key == key),
        (None, Some(id)) => id
            .parse::<u64>()
            .ok()
            .and_then(|id| store.projects.iter().position(|p| p.id == id)),
        (None, None) => None,
    };
    let mut errors = Map::new();
    if project_index.is_none() {
        errors.insert("project".into(), json!("valid project is required"));
    }
    if summary.trim().is_empty() {
        errors.insert(
            "summary".into(),
            json!("You must specify a summary of the issue."),
        );
    }
    if issue_type.is_empty() {
        errors.insert("issuetype".into(), json!("Specify an issue type"));
    } else if !ISSUE_TYPES.contains(&issue_type) {
        errors.insert("issuetype".into(), json!("Specify a valid issue type"));
    }
    if description.is_some_and(|d| !is_adf_document(d)) {
        errors.insert(
            "description".into(),
            json!(
                "Operation value must be an Atlassian Document (see the Atlassian Document \
                 Format)"
            ),
        );
    }
    let Some(project_index) = project_index.filter(|_| errors.is_empty()) else {
        return field_errors(errors);
    };

    let id = FIRST_ISSUE_ID + store.issues.len() as u64;
    let project = &mut store.projects[project_index];
    project.last_issue_number += 1;
    let issue = Issue {
        id,
        key: format!("{}-{}", project.key, project.last_issue_number),
        project_id: project.id,
        project_key: project.key.clone(),
        summary: summary.to_owned(),
        issue_type: issue_type.to_owned(),
        description: description.cloned(),
        created: rfc3339_millis(SystemTime::now()),
    };
    let created = json!({
        "id": id.to_string(),
        "key": issue.key,
        "self": issue.self_url(&state.base_url),
    });
    store.issues.push(issue);
    (StatusCode::CREATED, axum::Json(created)).into_response()
}

async fn get_issue(State(state): State<Arc<JiraState>>, Path(key_or_id): Path<String>) -> Response {
    let store = lock(&state.store);
    let found = match key_or_id.parse::<u64>() {
        Ok(id) => store.issues.iter().find(|i| i.id == id),
        Err(_) => store.issues.iter().find(|i| i.key == key_or_id),
    };
    match found {
        Some(issue) => axum::Json(issue.to_json(&state.base_url)).into_response(),
        None => jira_error(
            StatusCode::NOT_FOUND,
            &["Issue does not exist or you do not have permission to see it."],
            Map::new(),
        ),
    }
}

#[cfg(test)]
mod tests;
