//! A stand-in of a professional-services automation (PSA) tool: projects, roles, people,
//! assignments and time entries with approval.
//!
//! No one vendor's API: the resources are those every PSA has, in a plain REST shape under
//! [`API_PATH`], with the conventions of Kantata OX (formerly Mavenlink): OAuth bearer tokens,
//! string ids, `page`/`per_page` paging with a `meta` block, and errors as
//! `{"errors":[{"type","message","field"}]}`. Unlike Kantata, creates honour an
//! `Idempotency-Key` header, projects carry an external id to upsert by, and approved time is
//! read through a cursor.
//!
//! Every request needs `Authorization: Bearer {token}` (the token given to
//! [`PsaStandin::start`]). Paths are under [`API_PATH`]:
//!
//! | method and path | answer |
//! | --- | --- |
//! | `POST /projects` `{"name","external_id"?,"customer"?,"start_date"?,"budget"?}` | `201` the project, `pending`; `409` when the external id is taken |
//! | `GET /projects?status=&external_id=&page=&per_page=` | `200` a page of projects |
//! | `GET /projects/{id}`, `GET /projects/external_id/{external_id}` | `200` the project; `404` |
//! | `PUT /projects/external_id/{external_id}` (fields as for a create, plus `status`) | `201` created, `200` updated |
//! | `PATCH /projects/{id}` (any of the fields, `status` included) | `200` the project; `422` for an illegal move |
//! | `POST /projects/{id}/roles` `{"name","skills","hours","start_date"?,"end_date"?,"bill_rate"?}` | `201` the role |
//! | `GET /projects/{id}/roles?page=&per_page=` | `200` a page of roles |
//! | `POST /projects/{id}/assignments` `{"role_id","person_id","hours"?}` | `201` the assignment; `409` when the person already fills the role |
//! | `GET /projects/{id}/assignments?page=&per_page=` | `200` a page of assignments |
//! | `GET /assignments/{id}`, `DELETE /assignments/{id}` | `200` the assignment; `204` |
//! | `GET /people?skill=&page=&per_page=`, `GET /people/{id}` | `200` a page of people; one person |
//! | `POST /time_entries` `{"project_id","person_id","role_id"?,"date","hours","billable"?,"note"?,"status"?}` | `201` the entry, `draft` unless `"status":"submitted"` |
//! | `GET /time_entries?project_id=&person_id=&status=&page=&per_page=` | `200` a page of entries |
//! | `GET /time_entries/{id}`, `PATCH /time_entries/{id}` (`status`, or `date`/`hours`/`billable`/`note` while `draft` or `rejected`) | `200` the entry |
//! | `GET /time_entries/approved?since=&limit=` | `200 {"results","next_cursor","has_more"}`: entries approved after the cursor, in approval order |
//!
//! A page is `{"results":[...],"meta":{"count","page_count","page_number","page_size"}}`:
//! `count` is the number of matching records, `page` starts at 1, `per_page` is 20 unless given
//! (at most [`MAX_PAGE_SIZE`]).
//!
//! Lifecycles (setting a status to the one it has is accepted and changes nothing):
//! - project: `pending` -> `active` -> `closed`; `pending` or `active` -> `cancelled`. Roles and
//!   assignments can be added while a project is `pending` or `active`; time only while it is
//!   `active`.
//! - time entry: `draft` -> `submitted` -> `approved` or `rejected`; `rejected` -> `submitted`.
//!   Approval is final and gives the entry its place in the approved cursor.
//!
//! `GET /time_entries/approved` is how an invoicing flow reads new approved time: start without
//! `since`, keep the `next_cursor` of each answer, pass it as `since` next time; the cursor is
//! opaque and never moves back, and it stays put when nothing new was approved.
//!
//! A `POST` with an `Idempotency-Key` header is done once: a retry with the same key, path and
//! body gets the first (successful) answer again, with `Idempotent-Replayed: true`; the same key
//! with another request is `422` with `"type":"idempotency"`.
//!
//! Errors: `400` `invalid_request` for a body that is not a JSON object; `401` `oauth`; `404`
//! `not_found`; `409` `conflict` with the `field`; `422` `validation` with the `field` (a JSON
//! member such as `budget.currency`, or a query parameter). People are not created over the API:
//! seed them with [`PsaStandin::add_person`].

// Handlers build their answers with `Result<_, Response>`, the error being the response to send.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::server::{
    FaultResponses, FieldError, IdempotencyKeys, Lifecycle, StandinCore, behind_authorization,
    honour_idempotency_key, json_object, lock, only_known_fields, optional_date, optional_money,
    optional_number, optional_text, query_number, required_text, rfc3339_millis, standin_handle,
    with_rate_limit_headers,
};

/// Where the API lives under the base URL.
pub const API_PATH: &str = "/api/v1";

/// The request limit advertised in `X-RateLimit-Limit` when the stand-in answers `429`.
pub const RATE_LIMIT: u32 = 100;

/// The largest `per_page`.
pub const MAX_PAGE_SIZE: u64 = 200;

const DEFAULT_PAGE_SIZE: u64 = 20;
const DEFAULT_APPROVED_LIMIT: u64 = 100;
const MAX_APPROVED_LIMIT: u64 = 500;

const PROJECTS: Lifecycle = Lifecycle {
    moves: &[
        ("pending", "active"),
        ("pending", "cancelled"),
        ("active", "closed"),
        ("active", "cancelled"),
    ],
};

const TIME_ENTRIES: Lifecycle = Lifecycle {
    moves: &[
        ("draft", "submitted"),
        ("submitted", "approved"),
        ("submitted", "rejected"),
        ("rejected", "submitted"),
    ],
};

/// A running PSA stand-in on `127.0.0.1`.
///
/// Clones share one server and one store. The server stops when the last clone is dropped, or
/// earlier through [`PsaStandin::shutdown`].
#[derive(Clone)]
pub struct PsaStandin {
    core: Arc<StandinCore>,
    state: Arc<PsaState>,
}

standin_handle!(
    PsaStandin,
    "a PSA connector (the API is under [`API_PATH`])",
    "The error bodies are `{\"errors\":[{\"type\",\"message\"}]}`: `500` type `system`; `429` \
     type `rate_limit` with `Retry-After` and `X-RateLimit-Limit` ([`RATE_LIMIT`]), \
     `X-RateLimit-Remaining: 0` and `X-RateLimit-Reset` (Unix seconds); `401` type `oauth`."
);

/// A person to seed the stand-in with; see [`PsaStandin::add_person`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewPerson {
    /// Full name.
    pub name: String,
    /// E-mail address.
    pub email: String,
    /// Skills, e.g. `["rust", "solution architecture"]`.
    pub skills: Vec<String>,
    /// Hours the person can still be booked for in the planning window.
    pub available_hours: f64,
    /// Cost per hour, in `currency`.
    pub cost_rate: f64,
    /// ISO 4217 code of the cost rate, e.g. `USD`.
    pub currency: String,
}

impl PsaStandin {
    /// Starts on 127.0.0.1 with an ephemeral port; accepts `Authorization: Bearer {token}`.
    ///
    /// Must be called inside a Tokio runtime, which the server task then runs on.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start(token: &str) -> anyhow::Result<PsaStandin> {
        let token = token.to_owned();
        let (core, state) = StandinCore::start_with_state(
            "psa",
            PsaFaults,
            |_base_url| PsaState {
                token,
                store: Mutex::new(Store::default()),
            },
            router,
        )
        .await?;
        Ok(PsaStandin {
            core: Arc::new(core),
            state,
        })
    }

    /// Adds a person (a bookable resource) and returns their id.
    pub fn add_person(&self, person: NewPerson) -> String {
        let mut store = lock(&self.state.store);
        let id = store.next_id(Kind::Person);
        store.people.push(Person {
            id: id.clone(),
            name: person.name,
            email: person.email,
            skills: person.skills,
            available_hours: person.available_hours,
            cost_rate: json!({ "amount": person.cost_rate, "currency": person.currency }),
        });
        id
    }

    /// The projects in creation order, as the API shows them.
    pub fn projects(&self) -> Vec<Value> {
        to_values(&lock(&self.state.store).projects)
    }

    /// The roles of every project in creation order.
    pub fn roles(&self) -> Vec<Value> {
        to_values(&lock(&self.state.store).roles)
    }

    /// The people in the order they were added.
    pub fn people(&self) -> Vec<Value> {
        to_values(&lock(&self.state.store).people)
    }

    /// The assignments not deleted, in creation order.
    pub fn assignments(&self) -> Vec<Value> {
        to_values(&lock(&self.state.store).assignments)
    }

    /// The time entries in creation order.
    pub fn time_entries(&self) -> Vec<Value> {
        to_values(&lock(&self.state.store).time_entries)
    }
}

struct PsaState {
    token: String,
    store: Mutex<Store>,
}

#[derive(Clone, Copy)]
enum Kind {
    Project,
    Role,
    Person,
    Assignment,
    TimeEntry,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Project => "project",
            Kind::Role => "role",
            Kind::Person => "person",
            Kind::Assignment => "assignment",
            Kind::TimeEntry => "time entry",
        }
    }

    /// Ids of each kind count up from their own base, so an id says what it names.
    fn first_id(self) -> u64 {
        match self {
            Kind::Project => 1001,
            Kind::Role => 2001,
            Kind::Person => 3001,
            Kind::Assignment => 4001,
            Kind::TimeEntry => 5001,
        }
    }
}

#[derive(Default)]
struct Store {
    projects: Vec<Project>,
    roles: Vec<Role>,
    people: Vec<Person>,
    assignments: Vec<Assignment>,
    time_entries: Vec<TimeEntry>,
    /// How many ids of each kind were handed out, by `Kind as usize`.
    issued: [u64; 5],
    /// The last approval's place in the approved cursor.
    approvals: u64,
}

impl Store {
    fn next_id(&mut self, kind: Kind) -> String {
        let issued = &mut self.issued[kind as usize];
        let id = kind.first_id() + *issued;
        *issued += 1;
        id.to_string()
    }

    fn project(&self, id: &str) -> Result<usize, Response> {
        self.projects
            .iter()
            .position(|p| p.id == id)
            .ok_or_else(|| not_found(Kind::Project, id))
    }
}

#[derive(Clone, Serialize)]
struct Project {
    id: String,
    name: String,
    external_id: Option<String>,
    customer: Option<String>,
    status: String,
    start_date: Option<String>,
    budget: Option<Value>,
    created_at: String,
    updated_at: String,
}

#[derive(Clone, Serialize)]
struct Role {
    id: String,
    project_id: String,
    name: String,
    skills: Vec<String>,
    hours: f64,
    start_date: Option<String>,
    end_date: Option<String>,
    bill_rate: Option<Value>,
    created_at: String,
}

#[derive(Clone, Serialize)]
struct Person {
    id: String,
    name: String,
    email: String,
    skills: Vec<String>,
    available_hours: f64,
    cost_rate: Value,
}

#[derive(Clone, Serialize)]
struct Assignment {
    id: String,
    project_id: String,
    role_id: String,
    person_id: String,
    hours: f64,
    created_at: String,
}

#[derive(Clone, Serialize)]
struct TimeEntry {
    id: String,
    project_id: String,
    person_id: String,
    role_id: Option<String>,
    date: String,
    hours: f64,
    billable: bool,
    note: Option<String>,
    status: String,
    approved_at: Option<String>,
    created_at: String,
    updated_at: String,
    /// Place in the approved cursor, once approved.
    #[serde(skip)]
    approval: Option<u64>,
}

fn to_value(record: &impl Serialize) -> Value {
    serde_json::to_value(record).unwrap_or(Value::Null)
}

fn to_values<T: Serialize>(records: &[T]) -> Vec<Value> {
    records.iter().map(to_value).collect()
}

/// What the generic handlers need to know of a stored record.
trait Record: Serialize {
    const KIND: Kind;
    fn id(&self) -> &str;
    /// The project the record belongs to, for records that belong to one.
    fn project_id(&self) -> Option<&str> {
        None
    }
}

macro_rules! record {
    ($type:ty, $kind:expr, $($project:ident)?) => {
        impl Record for $type {
            const KIND: Kind = $kind;
            fn id(&self) -> &str {
                &self.id
            }
            $(fn project_id(&self) -> Option<&str> {
                Some(&self.$project)
            })?
        }
    };
}

record!(Role, Kind::Role, project_id);
record!(Person, Kind::Person,);
record!(Assignment, Kind::Assignment, project_id);
record!(TimeEntry, Kind::TimeEntry, project_id);

/// The record with `id`, or `404`.
fn one<T: Record>(records: &[T], id: &str) -> Response {
    match records.iter().find(|r| r.id() == id) {
        Some(record) => axum::Json(to_value(record)).into_response(),
        None => not_found(T::KIND, id),
    }
}

/// A page of the `records` of project `project_id`, or `404` when there is no such project.
fn page_of_project<T: Record>(
    store: &Store,
    records: &[T],
    project_id: &str,
    query: &HashMap<String, String>,
) -> Result<(StatusCode, Value), Response> {
    store.project(project_id)?;
    let matching: Vec<Value> = records
        .iter()
        .filter(|r| r.project_id() == Some(project_id))
        .map(to_value)
        .collect();
    Ok((StatusCode::OK, page(matching, query)?))
}

fn now() -> String {
    rfc3339_millis(SystemTime::now())
}

fn psa_error(status: StatusCode, kind: &str, message: &str, field: Option<&str>) -> Response {
    let mut error = json!({ "type": kind, "message": message });
    if let (Some(field), Some(object)) = (field, error.as_object_mut()) {
        object.insert("field".into(), json!(field));
    }
    (status, axum::Json(json!({ "errors": [error] }))).into_response()
}

/// `422` naming the field, or `400` for a body that is not a JSON object (no field).
fn invalid(error: FieldError) -> Response {
    if error.field.is_empty() {
        psa_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &error.message,
            None,
        )
    } else {
        psa_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            &format!("{} {}", error.field, error.message),
            Some(&error.field),
        )
    }
}

fn not_found(kind: Kind, id: &str) -> Response {
    psa_error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("{} {id} not found", kind.name()),
        None,
    )
}

fn conflict(field: &str, message: &str) -> Response {
    psa_error(StatusCode::CONFLICT, "conflict", message, Some(field))
}

fn unauthorized() -> Response {
    psa_error(
        StatusCode::UNAUTHORIZED,
        "oauth",
        "Invalid OAuth 2 Request",
        None,
    )
}

fn key_reused(key: &str) -> Response {
    psa_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency",
        &format!(
            "Idempotency-Key {key:?} was already used with another request; use a new key for a \
             new request"
        ),
        Some("Idempotency-Key"),
    )
}

struct PsaFaults;

impl FaultResponses for PsaFaults {
    fn server_error(&self) -> Response {
        psa_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "system",
            "Something went wrong on our side; please try again",
            None,
        )
    }

    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        let response = psa_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit",
            &format!("Rate limit of {RATE_LIMIT} requests per minute exceeded"),
            None,
        );
        with_rate_limit_headers(response, RATE_LIMIT, retry_after_secs)
    }

    fn unauthorized(&self) -> Response {
        unauthorized()
    }
}

fn router(state: Arc<PsaState>) -> Router {
    let keys = Arc::new(IdempotencyKeys::new(key_reused));
    let api = Router::new()
        .route("/projects", get(list_projects).post(create_project))
        .route(
            "/projects/external_id/{external_id}",
            get(get_project_by_external_id).put(upsert_project),
        )
        .route("/projects/{id}", get(get_project).patch(update_project))
        .route("/projects/{id}/roles", get(list_roles).post(create_role))
        .route(
            "/projects/{id}/assignments",
            get(list_assignments).post(create_assignment),
        )
        .route(
            "/assignments/{id}",
            get(get_assignment).delete(delete_assignment),
        )
        .route("/people", get(list_people))
        .route("/people/{id}", get(get_person))
        .route(
            "/time_entries",
            get(list_time_entries).post(create_time_entry),
        )
        .route("/time_entries/approved", get(approved_time_entries))
        .route(
            "/time_entries/{id}",
            get(get_time_entry).patch(update_time_entry),
        );
    let router = Router::new()
        .nest(API_PATH, api)
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(keys, honour_idempotency_key));
    behind_authorization(router, "Bearer", &state.token, unauthorized).with_state(state)
}

async fn route_not_found() -> Response {
    psa_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint", None)
}

async fn method_not_allowed() -> Response {
    psa_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        "method not allowed on this endpoint",
        None,
    )
}

/// The answer of a handler: the status and record, or the error response.
fn answer(result: Result<(StatusCode, Value), Response>) -> Response {
    match result {
        Ok((status, body)) => (status, axum::Json(body)).into_response(),
        Err(response) => response,
    }
}

/// One page of `records` as `page` and `per_page` ask.
fn page(records: Vec<Value>, query: &HashMap<String, String>) -> Result<Value, Response> {
    let number = query_number(query, "page", 1)
        .map_err(invalid)?
        .unwrap_or(1);
    let size = query_number(query, "per_page", 1)
        .map_err(invalid)?
        .unwrap_or(DEFAULT_PAGE_SIZE);
    if size > MAX_PAGE_SIZE {
        return Err(invalid(FieldError::new(
            "per_page",
            format!("must be at most {MAX_PAGE_SIZE}"),
        )));
    }
    let count = records.len() as u64;
    let skip = usize::try_from((number - 1).saturating_mul(size)).unwrap_or(usize::MAX);
    let take = usize::try_from(size).unwrap_or(usize::MAX);
    let results: Vec<Value> = records.into_iter().skip(skip).take(take).collect();
    Ok(json!({
        "results": results,
        "meta": {
            "count": count,
            "page_count": count.div_ceil(size),
            "page_number": number,
            "page_size": size,
        },
    }))
}

/// Whether query parameter `name` is absent or equal to `value`.
fn wanted(query: &HashMap<String, String>, name: &str, value: Option<&str>) -> bool {
    query
        .get(name)
        .is_none_or(|wanted| Some(wanted.as_str()) == value)
}

const PROJECT_FIELDS: &[&str] = &[
    "name",
    "external_id",
    "customer",
    "status",
    "start_date",
    "budget",
];

/// The project members a request sets; absent ones stay as they are.
struct ProjectInput {
    name: Option<String>,
    external_id: Option<String>,
    customer: Option<String>,
    status: Option<String>,
    start_date: Option<String>,
    budget: Option<Value>,
}

fn project_input(body: &Bytes) -> Result<ProjectInput, FieldError> {
    let object = json_object(body)?;
    only_known_fields(&object, PROJECT_FIELDS)?;
    Ok(ProjectInput {
        name: optional_text(&object, "name")?,
        external_id: optional_text(&object, "external_id")?,
        customer: optional_text(&object, "customer")?,
        status: optional_text(&object, "status")?,
        start_date: optional_date(&object, "start_date")?,
        budget: optional_money(&object, "budget")?,
    })
}

fn taken_external_id(store: &Store, external_id: &str, except: Option<&str>) -> Option<String> {
    store
        .projects
        .iter()
        .find(|p| p.external_id.as_deref() == Some(external_id) && Some(p.id.as_str()) != except)
        .map(|p| p.id.clone())
}

/// Creates a project from `input`; it starts `pending`.
fn insert_project(store: &mut Store, input: ProjectInput) -> Result<Value, Response> {
    let name = input
        .name
        .ok_or_else(|| invalid(FieldError::new("name", "is required")))?;
    if let Some(status) = input.status.as_deref().filter(|s| *s != "pending") {
        return Err(invalid(FieldError::new(
            "status",
            format!("a project is created pending, not {status}; move it with PATCH afterwards"),
        )));
    }
    if let Some(external_id) = &input.external_id
        && let Some(existing) = taken_external_id(store, external_id, None)
    {
        return Err(conflict(
            "external_id",
            &format!("project {existing} already has external_id {external_id:?}"),
        ));
    }
    let created_at = now();
    let project = Project {
        id: store.next_id(Kind::Project),
        name,
        external_id: input.external_id,
        customer: input.customer,
        status: "pending".into(),
        start_date: input.start_date,
        budget: input.budget,
        created_at: created_at.clone(),
        updated_at: created_at,
    };
    let json = to_value(&project);
    store.projects.push(project);
    Ok(json)
}

/// Applies `input` to project `index`, checking the status move and external id first.
fn change_project(store: &mut Store, index: usize, input: ProjectInput) -> Result<Value, Response> {
    let current = &store.projects[index];
    if let Some(status) = &input.status {
        PROJECTS
            .check("status", &current.status, status)
            .map_err(invalid)?;
    }
    if let Some(external_id) = &input.external_id
        && let Some(existing) = taken_external_id(store, external_id, Some(&current.id))
    {
        return Err(conflict(
            "external_id",
            &format!("project {existing} already has external_id {external_id:?}"),
        ));
    }
    let project = &mut store.projects[index];
    if let Some(name) = input.name {
        project.name = name;
    }
    if input.external_id.is_some() {
        project.external_id = input.external_id;
    }
    if input.customer.is_some() {
        project.customer = input.customer;
    }
    if let Some(status) = input.status {
        project.status = status;
    }
    if input.start_date.is_some() {
        project.start_date = input.start_date;
    }
    if input.budget.is_some() {
        project.budget = input.budget;
    }
    project.updated_at = now();
    Ok(to_value(project))
}

async fn create_project(State(state): State<Arc<PsaState>>, body: Bytes) -> Response {
    answer(project_input(&body).map_err(invalid).and_then(|input| {
        let created = insert_project(&mut lock(&state.store), input)?;
        Ok((StatusCode::CREATED, created))
    }))
}

async fn list_projects(
    State(state): State<Arc<PsaState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let projects: Vec<Value> = lock(&state.store)
        .projects
        .iter()
        .filter(|p| wanted(&query, "status", Some(&p.status)))
        .filter(|p| wanted(&query, "external_id", p.external_id.as_deref()))
        .map(to_value)
        .collect();
    answer(page(projects, &query).map(|page| (StatusCode::OK, page)))
}

async fn get_project(State(state): State<Arc<PsaState>>, Path(id): Path<String>) -> Response {
    let store = lock(&state.store);
    answer(
        store
            .project(&id)
            .map(|i| (StatusCode::OK, to_value(&store.projects[i]))),
    )
}

async fn get_project_by_external_id(
    State(state): State<Arc<PsaState>>,
    Path(external_id): Path<String>,
) -> Response {
    let store = lock(&state.store);
    match store
        .projects
        .iter()
        .find(|p| p.external_id.as_deref() == Some(external_id.as_str()))
    {
        Some(project) => axum::Json(to_value(project)).into_response(),
        None => psa_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no project has external_id {external_id:?}"),
            None,
        ),
    }
}

async fn upsert_project(
    State(state): State<Arc<PsaState>>,
    Path(external_id): Path<String>,
    body: Bytes,
) -> Response {
    answer(project_input(&body).map_err(invalid).and_then(|mut input| {
        if input
            .external_id
            .as_deref()
            .is_some_and(|e| e != external_id)
        {
            return Err(invalid(FieldError::new(
                "external_id",
                format!("must be absent or {external_id:?}, the external id in the path"),
            )));
        }
        input.external_id = Some(external_id.clone());
        let mut store = lock(&state.store);
        match taken_external_id(&store, &external_id, None) {
            Some(id) => {
                let index = store.project(&id)?;
                Ok((StatusCode::OK, change_project(&mut store, index, input)?))
            }
            None => Ok((StatusCode::CREATED, insert_project(&mut store, input)?)),
        }
    }))
}

async fn update_project(
    State(state): State<Arc<PsaState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    answer(project_input(&body).map_err(invalid).and_then(|input| {
        let mut store = lock(&state.store);
        let index = store.project(&id)?;
        Ok((StatusCode::OK, change_project(&mut store, index, input)?))
    }))
}

/// Refuses to staff a project that is over.
fn open_for_staffing(project: &Project) -> Result<(), Response> {
    if project.status == "pending" || project.status == "active" {
        Ok(())
    } else {
        Err(invalid(FieldError::new(
            "project_id",
            format!(
                "project {} is {}; roles and assignments can only be added while it is pending \
                 or active",
                project.id, project.status
            ),
        )))
    }
}

fn skills(object: &Map<String, Value>) -> Result<Vec<String>, FieldError> {
    let Some(list) = object.get("skills") else {
        return Ok(Vec::new());
    };
    let not_a_list = || FieldError::new("skills", "must be a list of non-blank strings");
    let list = list.as_array().ok_or_else(not_a_list)?;
    list.iter()
        .map(|s| {
            s.as_str()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(not_a_list)
        })
        .collect()
}

/// Member `field` as a positive number of hours: `Ok(None)` when absent.
fn optional_hours(object: &Map<String, Value>, field: &str) -> Result<Option<f64>, FieldError> {
    match optional_number(object, field)? {
        Some(hours) if hours <= 0.0 => Err(FieldError::new(field, "must be more than 0")),
        hours => Ok(hours),
    }
}

struct RoleInput {
    name: String,
    skills: Vec<String>,
    hours: f64,
    start_date: Option<String>,
    end_date: Option<String>,
    bill_rate: Option<Value>,
}

fn role_input(body: &Bytes) -> Result<RoleInput, FieldError> {
    let object = json_object(body)?;
    only_known_fields(
        &object,
        &[
            "name",
            "skills",
            "hours",
            "start_date",
            "end_date",
            "bill_rate",
        ],
    )?;
    let input = RoleInput {
        name: required_text(&object, "name")?,
        skills: skills(&object)?,
        hours: optional_hours(&object, "hours")?
            .ok_or_else(|| FieldError::new("hours", "is required"))?,
        start_date: optional_date(&object, "start_date")?,
        end_date: optional_date(&object, "end_date")?,
        bill_rate: optional_money(&object, "bill_rate")?,
    };
    if let (Some(start), Some(end)) = (&input.start_date, &input.end_date)
        && end < start
    {
        return Err(FieldError::new(
            "end_date",
            format!("{end} is before start_date {start}"),
        ));
    }
    Ok(input)
}

async fn create_role(
    State(state): State<Arc<PsaState>>,
    Path(project_id): Path<String>,
    body: Bytes,
) -> Response {
    answer(role_input(&body).map_err(invalid).and_then(|input| {
        let mut store = lock(&state.store);
        let project = store.project(&project_id)?;
        open_for_staffing(&store.projects[project])?;
        let role = Role {
            id: store.next_id(Kind::Role),
            project_id,
            name: input.name,
            skills: input.skills,
            hours: input.hours,
            start_date: input.start_date,
            end_date: input.end_date,
            bill_rate: input.bill_rate,
            created_at: now(),
        };
        let json = to_value(&role);
        store.roles.push(role);
        Ok((StatusCode::CREATED, json))
    }))
}

async fn list_roles(
    State(state): State<Arc<PsaState>>,
    Path(project_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let store = lock(&state.store);
    answer(page_of_project(&store, &store.roles, &project_id, &query))
}

fn assignment_input(body: &Bytes) -> Result<(String, String, Option<f64>), FieldError> {
    let object = json_object(body)?;
    only_known_fields(&object, &["role_id", "person_id", "hours"])?;
    Ok((
        required_text(&object, "role_id")?,
        required_text(&object, "person_id")?,
        optional_hours(&object, "hours")?,
    ))
}

async fn create_assignment(
    State(state): State<Arc<PsaState>>,
    Path(project_id): Path<String>,
    body: Bytes,
) -> Response {
    answer(
        assignment_input(&body)
            .map_err(invalid)
            .and_then(|(role_id, person_id, hours)| {
                let mut store = lock(&state.store);
                let project = store.project(&project_id)?;
                open_for_staffing(&store.projects[project])?;
                let Some(role) = store
                    .roles
                    .iter()
                    .find(|r| r.id == role_id && r.project_id == project_id)
                else {
                    return Err(invalid(FieldError::new(
                        "role_id",
                        format!("project {project_id} has no role {role_id}"),
                    )));
                };
                let hours = hours.unwrap_or(role.hours);
                if !store.people.iter().any(|p| p.id == person_id) {
                    return Err(invalid(FieldError::new(
                        "person_id",
                        format!("there is no person {person_id}"),
                    )));
                }
                if let Some(existing) = store
                    .assignments
                    .iter()
                    .find(|a| a.role_id == role_id && a.person_id == person_id)
                {
                    return Err(conflict(
                        "person_id",
                        &format!(
                            "person {person_id} already fills role {role_id} (assignment {})",
                            existing.id
                        ),
                    ));
                }
                let assignment = Assignment {
                    id: store.next_id(Kind::Assignment),
                    project_id,
                    role_id,
                    person_id,
                    hours,
                    created_at: now(),
                };
                let json = to_value(&assignment);
                store.assignments.push(assignment);
                Ok((StatusCode::CREATED, json))
            }),
    )
}

async fn list_assignments(
    State(state): State<Arc<PsaState>>,
    Path(project_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let store = lock(&state.store);
    answer(page_of_project(
        &store,
        &store.assignments,
        &project_id,
        &query,
    ))
}

async fn get_assignment(State(state): State<Arc<PsaState>>, Path(id): Path<String>) -> Response {
    one(&lock(&state.store).assignments, &id)
}

async fn delete_assignment(State(state): State<Arc<PsaState>>, Path(id): Path<String>) -> Response {
    let mut store = lock(&state.store);
    match store.assignments.iter().position(|a| a.id == id) {
        Some(index) => {
            store.assignments.remove(index);
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found(Kind::Assignment, &id),
    }
}

async fn list_people(
    State(state): State<Arc<PsaState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let skill = query.get("skill").map(|s| s.to_lowercase());
    let people: Vec<Value> = lock(&state.store)
        .people
        .iter()
        .filter(|p| {
            skill
                .as_ref()
                .is_none_or(|wanted| p.skills.iter().any(|s| s.to_lowercase() == *wanted))
        })
        .map(to_value)
        .collect();
    answer(page(people, &query).map(|page| (StatusCode::OK, page)))
}

async fn get_person(State(state): State<Arc<PsaState>>, Path(id): Path<String>) -> Response {
    one(&lock(&state.store).people, &id)
}

const TIME_ENTRY_FIELDS: &[&str] = &[
    "project_id",
    "person_id",
    "role_id",
    "date",
    "hours",
    "billable",
    "note",
    "status",
];

/// What a time entry request sets; absent members stay as they are.
struct TimeEntryInput {
    project_id: Option<String>,
    person_id: Option<String>,
    role_id: Option<String>,
    date: Option<String>,
    hours: Option<f64>,
    billable: Option<bool>,
    note: Option<String>,
    status: Option<String>,
}

fn time_entry_input(body: &Bytes) -> Result<TimeEntryInput, FieldError> {
    let object = json_object(body)?;
    only_known_fields(&object, TIME_ENTRY_FIELDS)?;
    let hours = optional_hours(&object, "hours")?;
    if hours.is_some_and(|h| h > 24.0) {
        return Err(FieldError::new("hours", "must be at most 24 in one entry"));
    }
    let billable = match object.get("billable") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(FieldError::new("billable", "must be true or false")),
    };
    Ok(TimeEntryInput {
        project_id: optional_text(&object, "project_id")?,
        person_id: optional_text(&object, "person_id")?,
        role_id: optional_text(&object, "role_id")?,
        date: optional_date(&object, "date")?,
        hours,
        billable,
        note: optional_text(&object, "note")?,
        status: optional_text(&object, "status")?,
    })
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, Response> {
    value.ok_or_else(|| invalid(FieldError::new(field, "is required")))
}

/// Gives an entry that has just been approved its approval time and place in the cursor.
fn stamp_approval(store: &mut Store, index: usize) {
    store.approvals += 1;
    let entry = &mut store.time_entries[index];
    entry.approval = Some(store.approvals);
    entry.approved_at = Some(now());
}

async fn create_time_entry(State(state): State<Arc<PsaState>>, body: Bytes) -> Response {
    answer(time_entry_input(&body).map_err(invalid).and_then(|input| {
        let project_id = required(input.project_id, "project_id")?;
        let person_id = required(input.person_id, "person_id")?;
        let date = required(input.date, "date")?;
        let hours = required(input.hours, "hours")?;
        let status = input.status.unwrap_or_else(|| "draft".into());
        if status != "draft" && status != "submitted" {
            return Err(invalid(FieldError::new(
                "status",
                format!("a time entry is created draft or submitted, not {status}"),
            )));
        }
        let mut store = lock(&state.store);
        let Some(project) = store.projects.iter().find(|p| p.id == project_id) else {
            return Err(invalid(FieldError::new(
                "project_id",
                format!("there is no project {project_id}"),
            )));
        };
        if project.status != "active" {
            return Err(invalid(FieldError::new(
                "project_id",
                format!(
                    "project {project_id} is {}; time can only be logged on an active project",
                    project.status
                ),
            )));
        }
        if !store.people.iter().any(|p| p.id == person_id) {
            return Err(invalid(FieldError::new(
                "person_id",
                format!("there is no person {person_id}"),
            )));
        }
        if let Some(role_id) = &input.role_id
            && !store
                .roles
                .iter()
                .any(|r| r.id == *role_id && r.project_id == project_id)
        {
            return Err(invalid(FieldError::new(
                "role_id",
                format!("project {project_id} has no role {role_id}"),
            )));
        }
        let created_at = now();
        let entry = TimeEntry {
            id: store.next_id(Kind::TimeEntry),
            project_id,
            person_id,
            role_id: input.role_id,
            date,
            hours,
            billable: input.billable.unwrap_or(true),
            note: input.note,
            status,
            approved_at: None,
            created_at: created_at.clone(),
            updated_at: created_at,
            approval: None,
        };
        let json = to_value(&entry);
        store.time_entries.push(entry);
        Ok((StatusCode::CREATED, json))
    }))
}

async fn update_time_entry(
    State(state): State<Arc<PsaState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    answer(time_entry_input(&body).map_err(invalid).and_then(|input| {
        let mut store = lock(&state.store);
        let Some(index) = store.time_entries.iter().position(|e| e.id == id) else {
            return Err(not_found(Kind::TimeEntry, &id));
        };
        let current = &store.time_entries[index];
        for (field, set) in [
            ("project_id", input.project_id.is_some()),
            ("person_id", input.person_id.is_some()),
            ("role_id", input.role_id.is_some()),
        ] {
            if set {
                return Err(invalid(FieldError::new(
                    field,
                    "cannot be changed; log a new entry instead",
                )));
            }
        }
        let edits = input.date.is_some()
            || input.hours.is_some()
            || input.billable.is_some()
            || input.note.is_some();
        if edits && current.status != "draft" && current.status != "rejected" {
            return Err(invalid(FieldError::new(
                "status",
                format!(
                    "time entry {id} is {}; only draft or rejected entries can be edited",
                    current.status
                ),
            )));
        }
        if let Some(status) = &input.status {
            TIME_ENTRIES
                .check("status", &current.status, status)
                .map_err(invalid)?;
        }
        let newly_approved =
            input.status.as_deref() == Some("approved") && current.status != "approved";
        let entry = &mut store.time_entries[index];
        if let Some(date) = input.date {
            entry.date = date;
        }
        if let Some(hours) = input.hours {
            entry.hours = hours;
        }
        if let Some(billable) = input.billable {
            entry.billable = billable;
        }
        if input.note.is_some() {
            entry.note = input.note;
        }
        if let Some(status) = input.status {
            entry.status = status;
        }
        entry.updated_at = now();
        if newly_approved {
            stamp_approval(&mut store, index);
        }
        Ok((StatusCode::OK, to_value(&store.time_entries[index])))
    }))
}

async fn get_time_entry(State(state): State<Arc<PsaState>>, Path(id): Path<String>) -> Response {
    one(&lock(&state.store).time_entries, &id)
}

async fn list_time_entries(
    State(state): State<Arc<PsaState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let entries: Vec<Value> = lock(&state.store)
        .time_entries
        .iter()
        .filter(|e| wanted(&query, "project_id", Some(&e.project_id)))
        .filter(|e| wanted(&query, "person_id", Some(&e.person_id)))
        .filter(|e| wanted(&query, "status", Some(&e.status)))
        .map(to_value)
        .collect();
    answer(page(entries, &query).map(|page| (StatusCode::OK, page)))
}

async fn approved_time_entries(
    State(state): State<Arc<PsaState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    answer(approved_page(&state, &query))
}

/// Entries approved after cursor `since`, in approval order.
fn approved_page(
    state: &PsaState,
    query: &HashMap<String, String>,
) -> Result<(StatusCode, Value), Response> {
    let since = query_number(query, "since", 0)
        .map_err(invalid)?
        .unwrap_or(0);
    let limit = query_number(query, "limit", 1)
        .map_err(invalid)?
        .unwrap_or(DEFAULT_APPROVED_LIMIT);
    if limit > MAX_APPROVED_LIMIT {
        return Err(invalid(FieldError::new(
            "limit",
            format!("must be at most {MAX_APPROVED_LIMIT}"),
        )));
    }
    let store = lock(&state.store);
    if since > store.approvals {
        return Err(invalid(FieldError::new(
            "since",
            format!("{since} is not a cursor this server gave out"),
        )));
    }
    let mut approved: Vec<(u64, &TimeEntry)> = store
        .time_entries
        .iter()
        .filter_map(|e| e.approval.filter(|a| *a > since).map(|a| (a, e)))
        .collect();
    approved.sort_by_key(|(approval, _)| *approval);
    let take = usize::try_from(limit).unwrap_or(usize::MAX);
    let has_more = approved.len() > take;
    approved.truncate(take);
    let next_cursor = approved.last().map_or(since, |(approval, _)| *approval);
    let results: Vec<Value> = approved.iter().map(|(_, e)| to_value(e)).collect();
    Ok((
        StatusCode::OK,
        json!({
            "results": results,
            "next_cursor": next_cursor.to_string(),
            "has_more": has_more,
        }),
    ))
}
