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
//! A request that carries `X-NetSuite-Idempotency-Key` with a key already seen gets the answer the
//! first request with that key got, and changes nothing: a retried create makes one record.
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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde_json::{Map, Value, json};

use crate::server::{FaultResponses, StandinCore, has_bearer_token, lock};
use crate::{Misbehaviour, RecordedRequest};

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

impl std::fmt::Debug for NetsuiteStandin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetsuiteStandin")
            .field("base_url", &self.core.base_url())
            .finish_non_exhaustive()
    }
}

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

    /// The base URL to give a NetSuite connector, `http://127.0.0.1:PORT` (no trailing slash);
    /// the record service is under [`RECORD_PATH`].
    pub fn base_url(&self) -> String {
        self.core.base_url()
    }

    /// The `127.0.0.1:PORT` authority, for outbound-host allowlists.
    pub fn host(&self) -> String {
        self.core.host()
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

    /// Every request received so far, in arrival order, including refused and misbehaved ones.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.core.requests()
    }

    /// Queues `misbehaviour` for the next requests; see [`Misbehaviour`] for the order of play.
    ///
    /// The error bodies are NetSuite's: `500` `UNEXPECTED_ERROR`; `429`
    /// `CONCURRENCY_LIMIT_EXCEEDED` with `Retry-After` (NetSuite sends no other rate headers);
    /// `401` `INVALID_LOGIN`.
    pub fn misbehave(&self, misbehaviour: Misbehaviour) {
        self.core.misbehave(misbehaviour);
    }

    /// Stops the server for every clone and waits until it has stopped. Calling it again does
    /// nothing.
    pub async fn shutdown(&self) {
        self.core.shutdown().await;
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
    /// The answer given to the first request with each idempotency key.
    idempotent: HashMap<String, Answer>,
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

/// A response kept whole so an idempotent replay can send it again.
#[derive(Clone)]
struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: Option<Value>,
}

impl Answer {
    fn no_content(location: String) -> Answer {
        Answer {
            status: StatusCode::NO_CONTENT,
            location: Some(location),
            body: None,
        }
    }

    fn error(status: StatusCode, code: &str, detail: &str, path: Option<&str>) -> Answer {
        Answer {
            status,
            location: None,
            body: Some(error_body(status, code, detail, path)),
        }
    }

    fn into_response(self) -> Response {
        let mut response = match self.body {
            Some(body) => (self.status, axum::Json(body)).into_response(),
            None => self.status.into_response(),
        };
        if self.status.is_client_error() || self.status.is_server_error() {
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.oracle.resource+json; type=error"),
            );
        }
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    }
}

/// The RFC 9110 (RFC 6585 for 429) section a status's `type` URL points at.
fn type_url(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1",
        401 => "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.2",
        404 => "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.5",
        405 => "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.6",
        429 => "https://www.rfc-editor.org/rfc/rfc6585.html#section-4",
        _ => "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.6.1",
    }
}

fn error_body(status: StatusCode, code: &str, detail: &str, path: Option<&str>) -> Value {
    let mut item = json!({ "detail": detail, "o:errorCode": code });
    if let (Some(path), Some(object)) = (path, item.as_object_mut()) {
        object.insert("o:errorPath".into(), json!(path));
    }
    json!({
        "type": type_url(status),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "o:errorDetails": [item],
    })
}

fn error(status: StatusCode, code: &str, detail: &str) -> Response {
    Answer::error(status, code, detail, None).into_response()
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "INVALID_LOGIN",
        "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI \
         at Setup > Users/Roles > User Management > View Login Audit Trail.",
    )
}

struct NetsuiteFaults;

impl FaultResponses for NetsuiteFaults {
    fn server_error(&self) -> Response {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNEXPECTED_ERROR",
            "An unexpected error occurred. Error ID: junction-standin",
        )
    }

    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "CONCURRENCY_LIMIT_EXCEEDED",
            "Concurrent request limit exceeded. Request blocked.",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        response
    }

    fn unauthorized(&self) -> Response {
        unauthorized()
    }
}

fn router(state: Arc<NetsuiteState>) -> Router {
    Router::new()
        .route(&format!("{RECORD_PATH}/{{record_type}}"), post(create))
        .route(
            &format!("{RECORD_PATH}/{{record_type}}/{{reference}}"),
            any(one),
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

/// Replays the answer to an earlier request with the same idempotency key, or runs `operation`
/// and keeps its answer under the key.
fn idempotent(
    state: &NetsuiteState,
    headers: &HeaderMap,
    operation: impl FnOnce(&mut Store) -> Answer,
) -> Response {
    let key = headers
        .get(IDEMPOTENCY_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut store = lock(&state.store);
    if let Some(answer) = key.as_ref().and_then(|k| store.idempotent.get(k)) {
        return answer.clone().into_response();
    }
    let answer = operation(&mut store);
    if let Some(key) = key {
        store.idempotent.insert(key, answer.clone());
    }
    answer.into_response()
}

fn unknown_type(name: &str) -> Answer {
    Answer::error(
        StatusCode::NOT_FOUND,
        "INVALID_URL",
        &format!("Record type '{name}' does not exist."),
        None,
    )
}

fn parse_body(body: &Bytes) -> Result<Map<String, Value>, Answer> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) | Err(_) => Err(Answer::error(
            StatusCode::BAD_REQUEST,
            "USER_ERROR",
            "Invalid content in the request body. The body must be a JSON object.",
            None,
        )),
    }
}

async fn create(
    State(state): State<Arc<NetsuiteState>>,
    Path(record_type): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    idempotent(&state, &headers, |store| {
        let Some(kind) = RecordType::parse(&record_type) else {
            return unknown_type(&record_type);
        };
        match parse_body(&body) {
            Ok(fields) => insert(store, &state.base_url, kind, fields, None),
            Err(answer) => answer,
        }
    })
}

/// `GET`, `PATCH` and `PUT` on one record.
async fn one(
    State(state): State<Arc<NetsuiteState>>,
    Path((record_type, reference)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(kind) = RecordType::parse(&record_type) else {
        return unknown_type(&record_type).into_response();
    };
    if method == Method::GET {
        let store = lock(&state.store);
        return match find(&store, kind, &reference) {
            Some(index) => {
                axum::Json(store.records[index].to_json(&state.base_url)).into_response()
            }
            None => nonexistent().into_response(),
        };
    }
    if method != Method::PATCH && method != Method::PUT {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "INVALID_URL",
            &format!("The {method} method is not allowed on this resource."),
        );
    }
    idempotent(&state, &headers, |store| {
        let fields = match parse_body(&body) {
            Ok(fields) => fields,
            Err(answer) => return answer,
        };
        match (find(store, kind, &reference), method == Method::PUT) {
            (Some(index), _) => update(store, &state.base_url, index, fields),
            (None, true) => match reference.strip_prefix("eid:") {
                Some(external_id) => insert(
                    store,
                    &state.base_url,
                    kind,
                    fields,
                    Some(external_id.to_owned()),
                ),
                None => Answer::error(
                    StatusCode::BAD_REQUEST,
                    "USER_ERROR",
                    "Upserts address the record by external id: PUT /{type}/eid:{externalId}.",
                    None,
                ),
            },
            (None, false) => nonexistent(),
        }
    })
}

fn nonexistent() -> Answer {
    Answer::error(
        StatusCode::NOT_FOUND,
        "NONEXISTENT_ID",
        "The record instance does not exist. Provide a valid record instance ID.",
        None,
    )
}

/// The index of the record `reference` (`1001` or `eid:X`) names.
fn find(store: &Store, kind: RecordType, reference: &str) -> Option<usize> {
    store.records.iter().position(|r| {
        r.kind == kind
            && match reference.strip_prefix("eid:") {
                Some(external_id) => r.external_id.as_deref() == Some(external_id),
                None => reference.parse::<u64>().is_ok_and(|id| id == r.id),
            }
    })
}

/// Checks `fields` (with `existing`, the fields of the record being updated) for `kind`.
fn validate(
    store: &Store,
    kind: RecordType,
    fields: &Map<String, Value>,
    existing: Option<&Map<String, Value>>,
) -> Option<Answer> {
    let value = |name: &str| fields.get(name).or_else(|| existing?.get(name));
    if kind == RecordType::Invoice {
        return validate_invoice(store, &value);
    }
    let company_name = value("companyName").and_then(Value::as_str).unwrap_or("");
    if company_name.trim().is_empty() {
        return Some(Answer::error(
            StatusCode::BAD_REQUEST,
            "USER_ERROR",
            "Please enter value(s) for: Company Name",
            Some("companyName"),
        ));
    }
    if kind == RecordType::Job {
        let parent = value("parent").and_then(|p| match p.get("id") {
            Some(Value::String(id)) => id.parse::<u64>().ok(),
            Some(Value::Number(id)) => id.as_u64(),
            _ => None,
        });
        let is_customer = parent.is_some_and(|id| {
            store
                .records
                .iter()
                .any(|r| r.kind == RecordType::Customer && r.id == id)
        });
        if !is_customer {
            return Some(Answer::error(
                StatusCode::BAD_REQUEST,
                "INVALID_KEY_OR_REF",
                "Invalid value for the resource or sub-resource field 'parent'. Provide a valid \
                 value.",
                Some("parent"),
            ));
        }
    }
    None
}

/// An invoice needs `entity` (an existing customer), an optional `job` (an
/// existing job), and `item.items`, each line with `item.id`, a positive
/// `quantity` and a `rate`.
fn validate_invoice<'a>(
    store: &Store,
    value: &impl Fn(&str) -> Option<&'a Value>,
) -> Option<Answer> {
    let refers_to = |field: &str, kind: RecordType| {
        let id = value(field).and_then(|p| match p.get("id") {
            Some(Value::String(id)) => id.parse::<u64>().ok(),
            Some(Value::Number(id)) => id.as_u64(),
            _ => None,
        });
        id.is_some_and(|id| store.records.iter().any(|r| r.kind == kind && r.id == id))
    };
    let invalid_ref = |field: &str| {
        Some(Answer::error(
            StatusCode::BAD_REQUEST,
            "INVALID_KEY_OR_REF",
            &format!(
                "Invalid value for the resource or sub-resource field '{field}'. Provide a valid \
                 value."
            ),
            Some(field),
        ))
    };
    if !refers_to("entity", RecordType::Customer) {
        return invalid_ref("entity");
    }
    if value("job").is_some() && !refers_to("job", RecordType::Job) {
        return invalid_ref("job");
    }
    let lines = value("item")
        .and_then(|i| i.get("items"))
        .and_then(Value::as_array);
    let Some(lines) = lines.filter(|l| !l.is_empty()) else {
        return Some(Answer::error(
            StatusCode::BAD_REQUEST,
            "USER_ERROR",
            "You must enter at least one line item for this transaction.",
            Some("item"),
        ));
    };
    for (n, line) in lines.iter().enumerate() {
        let item = line.get("item").and_then(|i| i.get("id")).is_some();
        let quantity = line
            .get("quantity")
            .and_then(Value::as_f64)
            .is_some_and(|q| q > 0.0);
        let rate = line.get("rate").and_then(Value::as_f64).is_some();
        if !(item && quantity && rate) {
            return Some(Answer::error(
                StatusCode::BAD_REQUEST,
                "USER_ERROR",
                "Please enter value(s) for: Item, Quantity, Rate",
                Some(&format!("item.items[{n}]")),
            ));
        }
    }
    None
}

fn duplicate_external_id(store: &Store, kind: RecordType, external_id: &str) -> Option<Answer> {
    store
        .records
        .iter()
        .any(|r| r.kind == kind && r.external_id.as_deref() == Some(external_id))
        .then(|| {
            Answer::error(
                StatusCode::BAD_REQUEST,
                "DUP_RCRD",
                &format!(
                    "A {} with external ID '{external_id}' already exists.",
                    kind.name()
                ),
                Some("externalId"),
            )
        })
}

fn insert(
    store: &mut Store,
    base_url: &str,
    kind: RecordType,
    mut fields: Map<String, Value>,
    external_id: Option<String>,
) -> Answer {
    let body_external_id = match fields.remove("externalId") {
        Some(Value::String(id)) => Some(id),
        _ => None,
    };
    let external_id = external_id.or(body_external_id);
    fields.remove("id");
    if let Some(answer) = validate(store, kind, &fields, None) {
        return answer;
    }
    if let Some(answer) = external_id
        .as_deref()
        .and_then(|e| duplicate_external_id(store, kind, e))
    {
        return answer;
    }
    let id = kind.first_id() + store.records.iter().filter(|r| r.kind == kind).count() as u64;
    let record = Record {
        kind,
        id,
        external_id,
        fields,
    };
    let location = record.url(base_url);
    store.records.push(record);
    Answer::no_content(location)
}

fn update(
    store: &mut Store,
    base_url: &str,
    index: usize,
    mut fields: Map<String, Value>,
) -> Answer {
    fields.remove("id");
    let kind = store.records[index].kind;
    let new_external_id = match fields.remove("externalId") {
        Some(Value::String(id)) if store.records[index].external_id.as_ref() != Some(&id) => {
            Some(id)
        }
        _ => None,
    };
    if let Some(answer) = validate(store, kind, &fields, Some(&store.records[index].fields)) {
        return answer;
    }
    if let Some(answer) = new_external_id
        .as_deref()
        .and_then(|e| duplicate_external_id(store, kind, e))
    {
        return answer;
    }
    let record = &mut store.records[index];
    if new_external_id.is_some() {
        record.external_id = new_external_id;
    }
    for (name, value) in fields {
        record.fields.insert(name, value);
    }
    Answer::no_content(record.url(base_url))
}
