//! A stand-in of the NetSuite REST record service (SuiteTalk REST web services): customers and
//! jobs (projects), and invoices.
//!
//! Endpoints (all under `/services/rest/record/v1`, all behind `Authorization: Bearer` with the
//! OAuth 2.0 access token given to [`NetsuiteStandin::start`]); `{type}` is `customer`, `job` or `invoice`
//! and `{ref}` is an internal id (`1001`) or `eid:` and an external id (`eid:CRM-42`):
//!
//! | method and path | answer |
//! | --- | --- |
//! | `POST /{type}` | `204` with `Location` naming the new record; `400` |
//! | `GET /{type}/{ref}` | `200` the record; `404` |
//! | `PATCH /{type}/{ref}` | `204` with `Location`; `400`, `404` |
//! | `PUT /{type}/eid:{externalId}` | `204` with `Location`: creates the record with that external id, or updates it |
//!
//! `X-NetSuite-Idempotency-Key` counts only on asynchronous requests (`Prefer: respond-async`,
//! see [`asynchronous`]): a second one with a key already submitted is `400` `IDEMPOTENCY_ERROR`.
//! A synchronous request ignores it, as the real service does, so a retried synchronous `POST`
//! makes a second record; what makes a synchronous write safe to retry is the external-id
//! upsert, `PUT /{type}/eid:{externalId}`.
//!
//! Errors have NetSuite's shape, `{"type","title","status","o:errorDetails":[{"detail",
//! "o:errorCode"}]}` (with `"o:errorPath"` naming the field where there is one): `401`
//! `INVALID_LOGIN`, `404` `NONEXISTENT_ID`, `400` `USER_ERROR` (a required field is missing or
//! the body is not JSON), `INVALID_KEY_OR_REF` (a job's `parent` is not a customer) and `DUP_RCRD`
//! (an external id already in use). A customer needs `companyName`; a job needs `companyName` and
//! `parent: {"id"}`, an existing customer. Customer ids count up from `1001`, job ids from
//! `2001`.
//!
//! An invoice needs `entity: {"id"}` (an existing customer), optionally `job: {"id"}` (an
//! existing job), and `item: {"items": [{"item": {"id"}, "quantity", "rate", ...}]}` with at
//! least one line (`USER_ERROR` naming `item.items[n]` otherwise); invoice ids count up from
//! `3001`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};
use serde_json::{Map, Value, json};

use crate::server::{StandinCore, has_bearer_token, lock, standin_handle};

mod answers;
pub mod asynchronous;
mod records;
mod validation;
use answers::{Answer, NetsuiteFaults, error, unauthorized};
use records::{create, one};

/// The path of the record service, under the base URL.
pub const RECORD_PATH: &str = "/services/rest/record/v1";

/// The header whose value makes a request idempotent.
pub const IDEMPOTENCY_HEADER: &str = "x-netsuite-idempotency-key";

const FIRST_CUSTOMER_ID: u64 = 1001;
const FIRST_JOB_ID: u64 = 2001;
const FIRST_INVOICE_ID: u64 = 3001;

/// A running NetSuite REST record service stand-in on `127.0.0.1`.
///
/// Clones share one server and one store. The server stops when the last clone is dropped, or
/// earlier through [`NetsuiteStandin::shutdown`].
#[derive(Clone)]
pub struct NetsuiteStandin {
    core: Arc<StandinCore>,
    state: Arc<NetsuiteState>,
}

standin_handle!(
    NetsuiteStandin,
    "a NetSuite connector (the record service is under [`RECORD_PATH`])",
    "The error bodies are NetSuite's: `500` `UNEXPECTED_ERROR`; `429` `CONCURRENCY_LIMIT_EXCEEDED` with `Retry-After` (NetSuite sends no other rate headers); `401` `INVALID_LOGIN`."
);

impl NetsuiteStandin {
    /// Starts on 127.0.0.1 with an ephemeral port; accepts `Authorization: Bearer {access_token}`.
    ///
    /// Must be called inside a Tokio runtime, which the server task then runs on.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start(access_token: &str) -> anyhow::Result<NetsuiteStandin> {
        let access_token = access_token.to_owned();
        let mut created_state = None;
        let core = StandinCore::start("netsuite", NetsuiteFaults, |base_url| {
            let state = Arc::new(NetsuiteState {
                base_url,
                access_token,
                store: Mutex::new(Store::default()),
            });
            created_state = Some(state.clone());
            router(state)
        })
        .await?;
        let state = created_state
            .ok_or_else(|| anyhow::anyhow!("the netsuite stand-in router was never built"))?;
        Ok(NetsuiteStandin {
            core: Arc::new(core),
            state,
        })
    }

    /// The stored customers in creation order, each as `GET /customer/{id}` returns it.
    pub fn customers(&self) -> Vec<Value> {
        self.records(RecordType::Customer)
    }

    /// The stored jobs in creation order, each as `GET /job/{id}` returns it.
    pub fn jobs(&self) -> Vec<Value> {
        self.records(RecordType::Job)
    }

    /// The stored invoices in creation order, each as `GET /invoice/{id}` returns it.
    pub fn invoices(&self) -> Vec<Value> {
        self.records(RecordType::Invoice)
    }

    fn records(&self, kind: RecordType) -> Vec<Value> {
        let store = lock(&self.state.store);
        store
            .records
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.to_json(&self.state.base_url))
            .collect()
    }
}

struct NetsuiteState {
    base_url: String,
    access_token: String,
    store: Mutex<Store>,
}

#[derive(Default)]
struct Store {
    records: Vec<Record>,
    /// The idempotency keys of the asynchronous requests submitted.
    async_keys: HashSet<String>,
    /// The answers of the asynchronous requests, by job id from 1.
    jobs: Vec<Answer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecordType {
    Customer,
    Job,
    Invoice,
}

impl RecordType {
    fn parse(name: &str) -> Option<RecordType> {
        match name {
            "customer" => Some(RecordType::Customer),
            "job" => Some(RecordType::Job),
            "invoice" => Some(RecordType::Invoice),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            RecordType::Customer => "customer",
            RecordType::Job => "job",
            RecordType::Invoice => "invoice",
        }
    }

    fn first_id(self) -> u64 {
        match self {
            RecordType::Customer => FIRST_CUSTOMER_ID,
            RecordType::Job => FIRST_JOB_ID,
            RecordType::Invoice => FIRST_INVOICE_ID,
        }
    }
}

struct Record {
    kind: RecordType,
    id: u64,
    external_id: Option<String>,
    fields: Map<String, Value>,
}

impl Record {
    fn url(&self, base_url: &str) -> String {
        format!("{base_url}{RECORD_PATH}/{}/{}", self.kind.name(), self.id)
    }

    /// The shape of `GET /{type}/{id}`: `links`, `id`, `externalId` when set, then the fields.
    fn to_json(&self, base_url: &str) -> Value {
        let mut object = Map::new();
        object.insert(
            "links".into(),
            json!([{ "rel": "self", "href": self.url(base_url) }]),
        );
        object.insert("id".into(), json!(self.id.to_string()));
        if let Some(external_id) = &self.external_id {
            object.insert("externalId".into(), json!(external_id));
        }
        for (name, value) in &self.fields {
            object.insert(name.clone(), value.clone());
        }
        Value::Object(object)
    }
}

fn router(state: Arc<NetsuiteState>) -> Router {
    Router::new()
        .route(&format!("{RECORD_PATH}/{{record_type}}"), post(create))
        .route(
            &format!("{RECORD_PATH}/{{record_type}}/{{reference}}"),
            any(one),
        )
        .route(
            &format!("{}/job/{{id}}", asynchronous::ASYNC_PATH),
            get(asynchronous::job),
        )
        .route(
            &format!(
                "{}/job/{{id}}/task/{{task}}/result",
                asynchronous::ASYNC_PATH
            ),
            get(asynchronous::result),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_bearer,
        ))
        .with_state(state)
}

async fn require_bearer(
    State(state): State<Arc<NetsuiteState>>,
    request: Request,
    next: Next,
) -> Response {
    if has_bearer_token(request.headers(), &state.access_token) {
        next.run(request).await
    } else {
        unauthorized()
    }
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "INVALID_URL",
        "The requested URL was not found on this server.",
    )
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "INVALID_URL",
        "The method is not allowed on this resource.",
    )
}
