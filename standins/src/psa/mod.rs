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

use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::server::{
    FieldError, IdempotencyKeys, Lifecycle, StandinCore, behind_authorization,
    honour_idempotency_key, lock, query_number, standin_handle,
};

mod errors;
mod projects;
mod records;
mod staffing;
mod time_entries;
use errors::{PsaFaults, invalid, key_reused, not_found, psa_error, unauthorized};
use projects::{
    create_project, get_project, get_project_by_external_id, list_projects, update_project,
    upsert_project,
};
use records::{Assignment, Person, Project, Role, TimeEntry, to_values};
use staffing::{
    create_assignment, create_role, delete_assignment, get_assignment, get_person,
    list_assignments, list_people, list_roles,
};
use time_entries::{
    approved_time_entries, create_time_entry, get_time_entry, list_time_entries, update_time_entry,
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
