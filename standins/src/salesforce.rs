//! A stand-in of the Salesforce REST API: sObject records, external-ID upserts, SOQL queries with
//! paging, and composite requests.
//!
//! Endpoints (all under `/services/data/vNN.0`, [`API_VERSION`] or any other version, all behind
//! `Authorization: Bearer` with the access token given to [`SalesforceStandin::start`]):
//!
//! | method and path | answer |
//! | --- | --- |
//! | `POST /sobjects/{type}/` | `201 {"id","success":true,"errors":[]}`; `400` |
//! | `GET /sobjects/{type}/{id}` | `200` the record with `attributes`; `404` |
//! | `PATCH /sobjects/{type}/{id}` | `204`; `400`, `404` |
//! | `PATCH /sobjects/{type}/{field}/{value}` | upsert by external id: `201 {"id","success","errors","created":true}` created, `204` updated |
//! | `GET /query?q=SOQL` | `200 {"totalSize","done","records","nextRecordsUrl"?}` |
//! | `GET /query/{locator}` | the next page, from a `nextRecordsUrl` |
//! | `POST /composite` | `200 {"compositeResponse":[{"body","httpHeaders","httpStatusCode","referenceId"}]}` |
//!
//! The types are `Account` (requires `Name`), `Contact` (`LastName`), `Opportunity` (`Name`,
//! `StageName`, `CloseDate`), `Lead` (`LastName`, `Company`) and any custom `*__c` type. A field
//! whose name ends in `External_Id__c` is a unique external-ID field: it can address an upsert,
//! and a second record with the same value is `DUPLICATE_VALUE`.
//!
//! SOQL is the subset `SELECT f1, f2 FROM Type [WHERE f op v [AND ...]] [ORDER BY f [ASC|DESC]]
//! [LIMIT n]`, `op` one of `= != < <= > >=` and `v` a quoted text, a number, `true`, `false`,
//! `null` or a UTC datetime (`2024-05-01T09:30:00Z`); keywords and field names in any case, text
//! compared case-insensitively as SOQL does, datetimes by time. `Id`, `CreatedDate`,
//! `LastModifiedDate` and `SystemModstamp` can be selected, filtered and sorted on. Pages
//! hold 2000 records, fewer when asked with `Sforce-Query-Options: batchSize=N` or
//! [`SalesforceStandin::set_query_batch_size`].
//!
//! A composite request runs its subrequests in order, resolving `@{referenceId.field}` in their
//! URLs and bodies; with `"allOrNone": true` the first failure rolls back everything before it
//! and the other subrequests answer `PROCESSING_HALTED`.
//!
//! Errors are Salesforce's arrays, `[{"message","errorCode","fields"}]`: `401`
//! `INVALID_SESSION_ID`, `404` `NOT_FOUND`, `400` `REQUIRED_FIELD_MISSING`, `DUPLICATE_VALUE`,
//! `MALFORMED_QUERY`, `INVALID_TYPE`, `JSON_PARSER_ERROR`, and `403` `REQUEST_LIMIT_EXCEEDED`
//! once the API usage passes the limit. Every response carries `Sforce-Limit-Info:
//! api-usage=N/M`, `N` counting every request the stand-in received.

// Handlers build their answers with `Result<_, Reply>`, the error being the answer to send.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Map, Value, json};

use crate::server::{FaultResponses, StandinCore, has_bearer_token, lock, rfc3339_millis};
use crate::{Misbehaviour, RecordedRequest};

/// The API version the stand-in's documentation and examples use.
pub const API_VERSION: &str = "v60.0";

/// The daily API request limit reported in `Sforce-Limit-Info` unless changed.
pub const DEFAULT_API_LIMIT: u64 = 15_000;

/// The header reporting API usage on every response.
pub const LIMIT_INFO_HEADER: &str = "sforce-limit-info";

const DEFAULT_BATCH_SIZE: usize = 2000;
const MAX_COMPOSITE_SUBREQUESTS: usize = 25;
const ROLLED_BACK: &str =
    "The transaction was rolled back since another operation in the same transaction failed.";

/// A running Salesforce REST API stand-in on `127.0.0.1`.
///
/// Clones share one server and one store. The server stops when the last clone is dropped, or
/// earlier through [`SalesforceStandin::shutdown`].
#[derive(Clone)]
pub struct SalesforceStandin {
    core: Arc<StandinCore>,
    state: Arc<SalesforceState>,
}

impl std::fmt::Debug for SalesforceStandin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceStandin")
            .field("base_url", &self.core.base_url())
            .finish_non_exhaustive()
    }
}

impl SalesforceStandin {
    /// Starts on 127.0.0.1 with an ephemeral port; accepts `Authorization: Bearer
    /// {access_token}`.
    ///
    /// Must be called inside a Tokio runtime, which the server task then runs on.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start(access_token: &str) -> anyhow::Result<SalesforceStandin> {
        let access_token = access_token.to_owned();
        let usage = Arc::new(Usage {
            used: AtomicU64::new(0),
            max: AtomicU64::new(DEFAULT_API_LIMIT),
        });
        let faults = SalesforceFaults {
            usage: usage.clone(),
        };
        let mut created_state = None;
        // Salesforce's URLs in bodies are relative to the instance, so the router needs no base.
        let core = StandinCore::start("salesforce", faults, |_base_url| {
            let state = Arc::new(SalesforceState {
                access_token,
                usage,
                batch_size: Mutex::new(None),
                store: Mutex::new(Store::default()),
            });
            created_state = Some(state.clone());
            router(state)
        })
        .await?;
        let state = created_state
            .ok_or_else(|| anyhow::anyhow!("the salesforce stand-in router was never built"))?;
        Ok(SalesforceStandin {
            core: Arc::new(core),
            state,
        })
    }

    /// The instance URL to give a Salesforce connector, `http://127.0.0.1:PORT` (no trailing
    /// slash).
    pub fn base_url(&self) -> String {
        self.core.base_url()
    }

    /// The `127.0.0.1:PORT` authority, for outbound-host allowlists.
    pub fn host(&self) -> String {
        self.core.host()
    }

    /// The stored records of `sobject_type` (`"Account"`) in creation order, each as `GET
    /// /sobjects/{type}/{id}` returns it.
    pub fn records(&self, sobject_type: &str) -> Vec<Value> {
        let store = lock(&self.state.store);
        store
            .records
            .iter()
            .filter(|r| r.kind == sobject_type)
            .map(|r| r.to_json(API_VERSION))
            .collect()
    }

    /// Every request received so far, in arrival order, including refused and misbehaved ones.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.core.requests()
    }

    /// The API usage `Sforce-Limit-Info` reports: requests received so far and the limit.
    pub fn api_usage(&self) -> (u64, u64) {
        self.state.usage.get()
    }

    /// Sets the usage counter and the limit; once the counter passes the limit every request is
    /// refused with `403 REQUEST_LIMIT_EXCEEDED`, as when an org runs out of daily API calls.
    pub fn set_api_usage(&self, used: u64, max: u64) {
        self.state.usage.used.store(used, Ordering::SeqCst);
        self.state.usage.max.store(max, Ordering::SeqCst);
    }

    /// Makes query pages hold `size` records (at least 1) whatever the request asks, so paging
    /// can be tested on a few records; `None` restores the API's own batch size.
    pub fn set_query_batch_size(&self, size: Option<usize>) {
        *lock(&self.state.batch_size) = size.map(|s| s.max(1));
    }

    /// Queues `misbehaviour` for the next requests; see [`Misbehaviour`] for the order of play.
    ///
    /// The error bodies are Salesforce's arrays: `500` `UNKNOWN_EXCEPTION`; `429`
    /// `REQUEST_LIMIT_EXCEEDED` with `Retry-After`; `401` `INVALID_SESSION_ID`. They carry
    /// `Sforce-Limit-Info` like every response.
    pub fn misbehave(&self, misbehaviour: Misbehaviour) {
        self.core.misbehave(misbehaviour);
    }

    /// Stops the server for every clone and waits until it has stopped. Calling it again does
    /// nothing.
    pub async fn shutdown(&self) {
        self.core.shutdown().await;
    }
}

/// The API usage counter behind `Sforce-Limit-Info`.
struct Usage {
    used: AtomicU64,
    max: AtomicU64,
}

impl Usage {
    /// Counts one request; returns the usage after it.
    fn count(&self) -> (u64, u64) {
        let used = self.used.fetch_add(1, Ordering::SeqCst) + 1;
        (used, self.max.load(Ordering::SeqCst))
    }

    fn get(&self) -> (u64, u64) {
        (
            self.used.load(Ordering::SeqCst),
            self.max.load(Ordering::SeqCst),
        )
    }
}

fn with_limit_info(mut response: Response, (used, max): (u64, u64)) -> Response {
    if let Ok(value) = HeaderValue::from_str(&format!("api-usage={used}/{max}")) {
        response.headers_mut().insert(LIMIT_INFO_HEADER, value);
    }
    response
}

struct SalesforceState {
    access_token: String,
    usage: Arc<Usage>,
    batch_size: Mutex<Option<usize>>,
    store: Mutex<Store>,
}

#[derive(Clone, Default)]
struct Store {
    records: Vec<SObject>,
    /// The rows of each query with more than one page, by query locator.
    cursors: HashMap<String, Vec<Value>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static NEXT_LOCATOR: AtomicU64 = AtomicU64::new(1);

#[derive(Clone)]
struct SObject {
    kind: String,
    id: String,
    fields: Map<String, Value>,
    created: String,
    modified: String,
}

impl SObject {
    fn url(&self, version: &str) -> String {
        format!(
            "/services/data/{version}/sobjects/{}/{}",
            self.kind, self.id
        )
    }

    fn attributes(&self, version: &str) -> Value {
        json!({ "type": self.kind, "url": self.url(version) })
    }

    /// The shape of `GET /sobjects/{type}/{id}`.
    fn to_json(&self, version: &str) -> Value {
        let mut object = Map::new();
        object.insert("attributes".into(), self.attributes(version));
        object.insert("Id".into(), json!(self.id));
        for (name, value) in &self.fields {
            object.insert(name.clone(), value.clone());
        }
        object.insert("CreatedDate".into(), json!(self.created));
        object.insert("LastModifiedDate".into(), json!(self.modified));
        Value::Object(object)
    }

    /// The value of `field`, its name in any case; the system fields `Id`, `CreatedDate`,
    /// `LastModifiedDate` and `SystemModstamp` included.
    fn field(&self, name: &str) -> Option<(String, Value)> {
        let system = [
            ("Id", &self.id),
            ("CreatedDate", &self.created),
            ("LastModifiedDate", &self.modified),
            ("SystemModstamp", &self.modified),
        ];
        if let Some((system_name, value)) =
            system.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            return Some(((*system_name).into(), json!(value)));
        }
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(n, v)| (n.clone(), v.clone()))
    }
}

/// Salesforce's timestamp format, `2024-05-01T09:30:00.000+0000`.
fn salesforce_time() -> String {
    let text = rfc3339_millis(SystemTime::now());
    format!("{}+0000", text.trim_end_matches('Z'))
}

/// The key prefix of `kind`'s ids, or `None` when the stand-in does not know the type.
fn key_prefix(kind: &str) -> Option<&'static str> {
    match kind {
        "Account" => Some("001"),
        "Contact" => Some("003"),
        "Opportunity" => Some("006"),
        "Lead" => Some("00Q"),
        custom if custom.ends_with("__c") && custom.len() > 3 => Some("a01"),
        _ => None,
    }
}

fn required_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Account" => &["Name"],
        "Contact" => &["LastName"],
        "Opportunity" => &["Name", "StageName", "CloseDate"],
        "Lead" => &["LastName", "Company"],
        _ => &[],
    }
}

fn is_external_id_field(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with("external_id__c")
}

/// An 18-character record id: prefix, a fixed pod, a counter, and the case-safe suffix.
fn new_id(prefix: &str) -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let id15 = format!("{prefix}5g{n:010}");
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let mut suffix = String::with_capacity(3);
    for chunk in id15.as_bytes().chunks(5) {
        let bits = chunk
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_ascii_uppercase())
            .fold(0usize, |acc, (i, _)| acc | (1 << i));
        suffix.push(char::from(alphabet[bits]));
    }
    id15 + &suffix
}

/// An answer before it becomes an HTTP response, so composite subrequests can reuse it.
#[derive(Clone)]
struct Reply {
    status: StatusCode,
    body: Option<Value>,
    location: Option<String>,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: Some(body),
            location: None,
        }
    }

    fn no_content() -> Reply {
        Reply {
            status: StatusCode::NO_CONTENT,
            body: None,
            location: None,
        }
    }

    fn error(status: StatusCode, code: &str, message: &str, fields: &[&str]) -> Reply {
        Reply {
            status,
            body: Some(error_array(code, message, fields)),
            location: None,
        }
    }

    fn is_success(&self) -> bool {
        self.status.is_success()
    }

    fn into_response(self) -> Response {
        let mut response = match self.body {
            Some(body) => (self.status, axum::Json(body)).into_response(),
            None => self.status.into_response(),
        };
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    }
}

fn error_array(code: &str, message: &str, fields: &[&str]) -> Value {
    json!([{ "message": message, "errorCode": code, "fields": fields }])
}

fn not_found() -> Reply {
    Reply::error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
        &[],
    )
}

fn unauthorized() -> Response {
    let mut response = Reply::error(
        StatusCode::UNAUTHORIZED,
        "INVALID_SESSION_ID",
        "Session expired or invalid",
        &[],
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
    response
}

struct SalesforceFaults {
    usage: Arc<Usage>,
}

impl FaultResponses for SalesforceFaults {
    fn server_error(&self) -> Response {
        let reply = Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: \
             1234567890-12345 (-1234567890)",
            &[],
        );
        with_limit_info(reply.into_response(), self.usage.count())
    }

    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        let mut response = Reply::error(
            StatusCode::TOO_MANY_REQUESTS,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
            &[],
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        with_limit_info(response, self.usage.count())
    }

    fn unauthorized(&self) -> Response {
        with_limit_info(unauthorized(), self.usage.count())
    }
}

fn router(state: Arc<SalesforceState>) -> Router {
    Router::new()
        .route("/services/data/{version}/{*rest}", any(rest_api))
        .fallback(unknown_path)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_bearer,
        ))
        // Outermost, so the 401 of a missing token carries the usage header too.
        .layer(middleware::from_fn_with_state(state.clone(), count_usage))
        .with_state(state)
}

async fn count_usage(
    State(state): State<Arc<SalesforceState>>,
    request: Request,
    next: Next,
) -> Response {
    let usage = state.usage.count();
    if usage.0 > usage.1 {
        let reply = Reply::error(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
            &[],
        );
        return with_limit_info(reply.into_response(), usage);
    }
    with_limit_info(next.run(request).await, usage)
}

async fn require_bearer(
    State(state): State<Arc<SalesforceState>>,
    request: Request,
    next: Next,
) -> Response {
    if has_bearer_token(request.headers(), &state.access_token) {
        next.run(request).await
    } else {
        unauthorized()
    }
}

async fn unknown_path() -> Response {
    not_found().into_response()
}

fn is_version(version: &str) -> bool {
    version
        .strip_prefix('v')
        .and_then(|v| v.split_once('.'))
        .is_some_and(|(major, minor)| {
            !major.is_empty()
                && major.bytes().all(|b| b.is_ascii_digit())
                && minor.bytes().all(|b| b.is_ascii_digit())
        })
}

async fn rest_api(
    State(state): State<Arc<SalesforceState>>,
    Path((version, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_version(&version) {
        return not_found().into_response();
    }
    let batch_size = lock(&state.batch_size).or_else(|| {
        headers
            .get("sforce-query-options")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split(',')
                    .find_map(|o| o.trim().strip_prefix("batchSize="))
            })
            .and_then(|n| n.trim().parse::<usize>().ok())
            .map(|n| n.clamp(200, DEFAULT_BATCH_SIZE))
    });
    let context = Context {
        version: &version,
        batch_size: batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
    };
    let mut store = lock(&state.store);
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    if segments == ["composite"] {
        if method != Method::POST {
            return method_not_allowed(&method).into_response();
        }
        return composite(&mut store, &context, &body).into_response();
    }
    dispatch(
        &mut store,
        &context,
        &method,
        &segments,
        query.as_deref(),
        &body,
    )
    .into_response()
}

struct Context<'a> {
    version: &'a str,
    batch_size: usize,
}

fn method_not_allowed(method: &Method) -> Reply {
    Reply::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        &format!("HTTP Method '{method}' not allowed."),
        &[],
    )
}

/// Answers one request on the path after `/services/data/{version}/`, split at `/`.
fn dispatch(
    store: &mut Store,
    context: &Context<'_>,
    method: &Method,
    segments: &[&str],
    query: Option<&str>,
    body: &[u8],
) -> Reply {
    match (method.as_str(), segments) {
        ("POST", ["sobjects", kind]) => create(store, context, kind, body),
        (_, ["sobjects", _]) => method_not_allowed(method),
        ("GET", ["sobjects", kind, id]) => get_record(store, context, kind, id),
        ("PATCH", ["sobjects", kind, id]) => update(store, kind, id, body),
        (_, ["sobjects", _, _]) => method_not_allowed(method),
        ("PATCH", ["sobjects", kind, field, value]) => upsert(store, kind, field, value, body),
        (_, ["sobjects", _, _, _]) => method_not_allowed(method),
        ("GET", ["query"]) => {
            let soql = query
                .into_iter()
                .flat_map(|q| q.split('&'))
                .find_map(|pair| pair.strip_prefix("q="))
                .map(|q| percent_decode(&q.replace('+', " ")));
            match soql {
                Some(soql) => run_query(store, context, &soql),
                None => Reply::error(
                    StatusCode::BAD_REQUEST,
                    "MALFORMED_QUERY",
                    "A query string has to be specified",
                    &[],
                ),
            }
        }
        ("GET", ["query", locator]) => query_more(store, context, locator),
        _ => not_found(),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_fields(body: &[u8]) -> Result<Map<String, Value>, Reply> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut fields)) => {
            fields.remove("attributes");
            fields.remove("Id");
            Ok(fields)
        }
        Ok(_) => Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of sObject from a value that is not an object",
            &[],
        )),
        Err(error) => Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            &format!(
                "Unexpected character at [line:{},column:{}]",
                error.line(),
                error.column()
            ),
            &[],
        )),
    }
}

fn known_type(kind: &str) -> Result<&'static str, Reply> {
    key_prefix(kind).ok_or_else(not_found)
}

/// Checks a record's fields after a create or update: required fields set, external ids unique.
fn validate(
    store: &Store,
    kind: &str,
    fields: &Map<String, Value>,
    own_id: Option<&str>,
) -> Result<(), Reply> {
    let missing: Vec<&str> = required_fields(kind)
        .iter()
        .copied()
        .filter(|name| match fields.get(*name) {
            None | Some(Value::Null) => true,
            Some(Value::String(text)) => text.trim().is_empty(),
            Some(_) => false,
        })
        .collect();
    if !missing.is_empty() {
        return Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_FIELD_MISSING",
            &format!("Required fields are missing: [{}]", missing.join(", ")),
            &missing,
        ));
    }
    for (name, value) in fields
        .iter()
        .filter(|(n, v)| is_external_id_field(n) && !v.is_null())
    {
        let clash = store.records.iter().find(|r| {
            r.kind == kind && Some(r.id.as_str()) != own_id && r.fields.get(name) == Some(value)
        });
        if let Some(clash) = clash {
            return Err(Reply::error(
                StatusCode::BAD_REQUEST,
                "DUPLICATE_VALUE",
                &format!(
                    "duplicate value found: {name} duplicates value on record with id: {}",
                    clash.id
                ),
                &[],
            ));
        }
    }
    Ok(())
}

fn insert(store: &mut Store, kind: &str, fields: Map<String, Value>) -> Result<String, Reply> {
    let prefix = known_type(kind)?;
    validate(store, kind, &fields, None)?;
    let now = salesforce_time();
    let id = new_id(prefix);
    store.records.push(SObject {
        kind: kind.to_owned(),
        id: id.clone(),
        fields,
        created: now.clone(),
        modified: now,
    });
    Ok(id)
}

fn created(context: &Context<'_>, kind: &str, id: &str, upserted: bool) -> Reply {
    let mut body = json!({ "id": id, "success": true, "errors": [] });
    if upserted && let Some(object) = body.as_object_mut() {
        object.insert("created".into(), json!(true));
    }
    Reply {
        status: StatusCode::CREATED,
        body: Some(body),
        location: Some(format!(
            "/services/data/{}/sobjects/{kind}/{id}",
            context.version
        )),
    }
}

fn create(store: &mut Store, context: &Context<'_>, kind: &str, body: &[u8]) -> Reply {
    let result = parse_fields(body).and_then(|fields| insert(store, kind, fields));
    match result {
        Ok(id) => created(context, kind, &id, false),
        Err(reply) => reply,
    }
}

/// The index of the record `kind`/`id`, the id given with 15 or 18 characters.
fn find(store: &Store, kind: &str, id: &str) -> Option<usize> {
    store
        .records
        .iter()
        .position(|r| r.kind == kind && (r.id == id || (id.len() == 15 && r.id.starts_with(id))))
}

fn get_record(store: &Store, context: &Context<'_>, kind: &str, id: &str) -> Reply {
    match find(store, kind, id) {
        Some(index) => Reply::ok(store.records[index].to_json(context.version)),
        None => not_found(),
    }
}

fn apply_update(store: &mut Store, index: usize, fields: Map<String, Value>) -> Result<(), Reply> {
    let record = &store.records[index];
    let mut merged = record.fields.clone();
    merged.extend(fields);
    validate(
        store,
        &record.kind.clone(),
        &merged,
        Some(&record.id.clone()),
    )?;
    let record = &mut store.records[index];
    record.fields = merged;
    record.modified = salesforce_time();
    Ok(())
}

fn update(store: &mut Store, kind: &str, id: &str, body: &[u8]) -> Reply {
    let result = known_type(kind).and_then(|_| {
        let fields = parse_fields(body)?;
        let index = find(store, kind, id).ok_or_else(not_found)?;
        apply_update(store, index, fields)
    });
    match result {
        Ok(()) => Reply::no_content(),
        Err(reply) => reply,
    }
}

fn upsert(store: &mut Store, kind: &str, field: &str, value: &str, body: &[u8]) -> Reply {
    let result = known_type(kind).and_then(|_| {
        if field == "Id" {
            let fields = parse_fields(body)?;
            let index = find(store, kind, value).ok_or_else(not_found)?;
            return apply_update(store, index, fields).map(|()| None);
        }
        if !is_external_id_field(field) {
            return Err(Reply::error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                &format!("Provided external ID field does not exist or is not accessible: {field}"),
                &[],
            ));
        }
        let mut fields = parse_fields(body)?;
        fields.insert(field.to_owned(), json!(value));
        let existing = store
            .records
            .iter()
            .position(|r| r.kind == kind && r.fields.get(field) == Some(&json!(value)));
        match existing {
            Some(index) => apply_update(store, index, fields).map(|()| None),
            None => insert(store, kind, fields).map(Some),
        }
    });
    match result {
        Ok(None) => Reply::no_content(),
        Ok(Some(id)) => Reply {
            status: StatusCode::CREATED,
            body: Some(json!({ "id": id, "success": true, "errors": [], "created": true })),
            location: None,
        },
        Err(reply) => reply,
    }
}

/// A parsed SOQL query of the supported subset.
#[derive(Debug, PartialEq)]
struct Soql {
    fields: Vec<String>,
    kind: String,
    conditions: Vec<Condition>,
    order_by: Option<(String, bool)>,
    limit: Option<usize>,
}

/// `field op literal` in a `WHERE` clause.
#[derive(Debug, PartialEq)]
struct Condition {
    field: String,
    op: Comparison,
    literal: Value,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Comparison {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Comparison {
    fn holds(self, ordering: Option<std::cmp::Ordering>) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match (self, ordering) {
            (Comparison::Equal, o) => o == Some(Equal),
            (Comparison::NotEqual, o) => o != Some(Equal),
            (Comparison::Less, o) => o == Some(Less),
            (Comparison::LessOrEqual, o) => matches!(o, Some(Less | Equal)),
            (Comparison::Greater, o) => o == Some(Greater),
            (Comparison::GreaterOrEqual, o) => matches!(o, Some(Greater | Equal)),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Comma,
    Compare(Comparison),
}

fn tokenize(soql: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = soql.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            ',' => {
                chars.next();
                tokens.push(Token::Comma);
            }
            '=' | '!' | '<' | '>' => {
                chars.next();
                let or_equal = chars.next_if_eq(&'=').is_some();
                tokens.push(Token::Compare(match (c, or_equal) {
                    ('=', false) => Comparison::Equal,
                    ('!', true) => Comparison::NotEqual,
                    ('<', false) => Comparison::Less,
                    ('<', true) => Comparison::LessOrEqual,
                    ('>', false) => Comparison::Greater,
                    ('>', true) => Comparison::GreaterOrEqual,
                    _ => return Err(format!("unexpected token: '{c}'")),
                }));
            }
            '\'' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some('n') => text.push('\n'),
                            Some(escaped) => text.push(escaped),
                            None => return Err("unterminated string".into()),
                        },
                        Some('\'') => break,
                        Some(other) => text.push(other),
                        None => return Err("unterminated string".into()),
                    }
                }
                tokens.push(Token::Text(text));
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' || c == '-' => {
                let mut word = String::new();
                // `:` and `+` appear in datetime literals, `2024-05-01T09:30:00+00:00`.
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || "_.-:+".contains(c) {
                        word.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word(word));
            }
            other => return Err(format!("unexpected token: '{other}'")),
        }
    }
    Ok(tokens)
}

fn is_keyword(token: Option<&Token>, keyword: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
}

fn parse_soql(soql: &str) -> Result<Soql, String> {
    let tokens = tokenize(soql)?;
    let mut at = 0;
    if !is_keyword(tokens.first(), "SELECT") {
        return Err("expecting SELECT".into());
    }
    at += 1;
    let mut fields = Vec::new();
    loop {
        match tokens.get(at) {
            Some(Token::Word(w)) if !w.eq_ignore_ascii_case("FROM") => fields.push(w.clone()),
            _ => return Err("expecting a field name".into()),
        }
        at += 1;
        if tokens.get(at) == Some(&Token::Comma) {
            at += 1;
        } else {
            break;
        }
    }
    if !is_keyword(tokens.get(at), "FROM") {
        return Err("expecting FROM".into());
    }
    let Some(Token::Word(kind)) = tokens.get(at + 1) else {
        return Err("expecting an object type after FROM".into());
    };
    at += 2;
    let mut conditions = Vec::new();
    if is_keyword(tokens.get(at), "WHERE") {
        at += 1;
        loop {
            let (Some(Token::Word(field)), Some(Token::Compare(op)), Some(value)) =
                (tokens.get(at), tokens.get(at + 1), tokens.get(at + 2))
            else {
                return Err("expecting a condition field = value".into());
            };
            let value = match value {
                Token::Text(text) => json!(text),
                Token::Word(w) if w.eq_ignore_ascii_case("null") => Value::Null,
                Token::Word(w) if w.eq_ignore_ascii_case("true") => json!(true),
                Token::Word(w) if w.eq_ignore_ascii_case("false") => json!(false),
                Token::Word(w) if datetime_key(w).is_some() => json!(w),
                Token::Word(w) => match w.parse::<f64>() {
                    Ok(n) => json!(n),
                    Err(_) => return Err(format!("unexpected value: {w}")),
                },
                _ => return Err("expecting a value".into()),
            };
            conditions.push(Condition {
                field: field.clone(),
                op: *op,
                literal: value,
            });
            at += 3;
            if is_keyword(tokens.get(at), "AND") {
                at += 1;
            } else {
                break;
            }
        }
    }
    let mut order_by = None;
    if is_keyword(tokens.get(at), "ORDER") {
        let (true, Some(Token::Word(field))) =
            (is_keyword(tokens.get(at + 1), "BY"), tokens.get(at + 2))
        else {
            return Err("expecting ORDER BY field".into());
        };
        at += 3;
        let descending = is_keyword(tokens.get(at), "DESC");
        if descending || is_keyword(tokens.get(at), "ASC") {
            at += 1;
        }
        order_by = Some((field.clone(), descending));
    }
    let mut limit = None;
    if is_keyword(tokens.get(at), "LIMIT") {
        match tokens.get(at + 1) {
            Some(Token::Word(n)) => {
                limit = Some(
                    n.parse::<usize>()
                        .map_err(|_| "expecting a number after LIMIT")?,
                );
            }
            _ => return Err("expecting a number after LIMIT".into()),
        }
        at += 2;
    }
    if let Some(extra) = tokens.get(at) {
        return Err(format!("unexpected token: {extra:?}"));
    }
    Ok(Soql {
        fields,
        kind: kind.clone(),
        conditions,
        order_by,
        limit,
    })
}

/// A UTC datetime (`2024-05-01T09:30:00Z`, `2024-05-01T09:30:00.000+0000`, `...+00:00`) as
/// its seconds and milliseconds, which order it; `None` for anything else.
fn datetime_key(text: &str) -> Option<(&str, u32)> {
    let seconds = text.get(..19)?;
    let shape = seconds.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        10 => b == b'T',
        13 | 16 => b == b':',
        _ => b.is_ascii_digit(),
    });
    let rest = &text[19..];
    let (fraction, zone) = match rest.strip_prefix('.') {
        Some(after) => after.split_at(
            after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len()),
        ),
        None => ("", rest),
    };
    if !shape || fraction.len() > 3 || !matches!(zone, "Z" | "+0000" | "+00:00") {
        return None;
    }
    Some((seconds, format!("{fraction:0<3}").parse().ok()?))
}

/// How a stored value compares with a SOQL literal: text case-insensitively (datetimes by
/// time), numbers by value, null before everything; `None` when they do not compare.
fn soql_compare(stored: Option<&Value>, literal: &Value) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering;
    match (stored.unwrap_or(&Value::Null), literal) {
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Null, _) => Some(Ordering::Less),
        (_, Value::Null) => Some(Ordering::Greater),
        (Value::String(a), Value::String(b)) => match (datetime_key(a), datetime_key(b)) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => Some(a.to_lowercase().cmp(&b.to_lowercase())),
        },
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (a, b) => (a == b).then_some(Ordering::Equal),
    }
}

fn run_query(store: &mut Store, context: &Context<'_>, soql: &str) -> Reply {
    let query = match parse_soql(soql) {
        Ok(query) => query,
        Err(message) => {
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "MALFORMED_QUERY",
                &format!("unexpected token or syntax: {message}"),
                &[],
            );
        }
    };
    if key_prefix(&query.kind).is_none() {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            &format!(
                "sObject type '{}' is not supported. If you are attempting to use a custom \
                 object, be sure to append the '__c' after the entity name.",
                query.kind
            ),
            &[],
        );
    }
    let value_of = |r: &SObject, field: &str| r.field(field).map(|(_, v)| v);
    let mut matching: Vec<&SObject> = store
        .records
        .iter()
        .filter(|r| {
            r.kind.eq_ignore_ascii_case(&query.kind)
                && query.conditions.iter().all(|c| {
                    c.op.holds(soql_compare(value_of(r, &c.field).as_ref(), &c.literal))
                })
        })
        .collect();
    if let Some((field, descending)) = &query.order_by {
        matching.sort_by(|a, b| {
            let b_value = value_of(b, field).unwrap_or(Value::Null);
            let ordering = soql_compare(value_of(a, field).as_ref(), &b_value)
                .unwrap_or(std::cmp::Ordering::Equal);
            if *descending {
                ordering.reverse()
            } else {
                ordering
            }
        });
    }
    let rows: Vec<Value> = matching
        .into_iter()
        .take(query.limit.unwrap_or(usize::MAX))
        .map(|r| {
            let mut row = Map::new();
            row.insert("attributes".into(), r.attributes(context.version));
            for field in &query.fields {
                let (name, value) = r.field(field).unwrap_or((field.clone(), Value::Null));
                row.insert(name, value);
            }
            Value::Object(row)
        })
        .collect();
    let locator = format!("01g5g{:010}", NEXT_LOCATOR.fetch_add(1, Ordering::Relaxed));
    let page = page_of(context, &rows, &locator, 0);
    if rows.len() > context.batch_size {
        store.cursors.insert(locator, rows);
    }
    Reply::ok(page)
}

fn page_of(context: &Context<'_>, rows: &[Value], locator: &str, offset: usize) -> Value {
    let end = offset.saturating_add(context.batch_size).min(rows.len());
    let records = rows.get(offset..end).unwrap_or_default();
    let mut page = json!({
        "totalSize": rows.len(),
        "done": end >= rows.len(),
        "records": records,
    });
    if end < rows.len()
        && let Some(object) = page.as_object_mut()
    {
        object.insert(
            "nextRecordsUrl".into(),
            json!(format!(
                "/services/data/{}/query/{locator}-{end}",
                context.version
            )),
        );
    }
    page
}

fn query_more(store: &Store, context: &Context<'_>, locator: &str) -> Reply {
    let page = locator.rsplit_once('-').and_then(|(cursor, offset)| {
        let rows = store.cursors.get(cursor)?;
        let offset = offset.parse::<usize>().ok()?;
        Some(page_of(context, rows, cursor, offset))
    });
    match page {
        Some(page) => Reply::ok(page),
        None => Reply::error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
            &[],
        ),
    }
}

/// Replaces each `@{referenceId.path}` in `text` with the value at `path` in that subrequest's
/// answer; `Err` names the first reference that cannot be resolved.
fn resolve_references(text: &str, results: &HashMap<String, Value>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let reference = &rest[start + 2..start + len];
        let mut parts = reference.split('.');
        let value = parts
            .next()
            .and_then(|id| results.get(id))
            .and_then(|body| parts.try_fold(body, |v, key| v.get(key)));
        match value {
            Some(Value::String(s)) => out.push_str(s),
            Some(other) => out.push_str(&other.to_string()),
            None => return Err(reference.to_owned()),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn composite_item(reply: &Reply, reference_id: &str) -> Value {
    let mut headers = Map::new();
    if let Some(location) = &reply.location {
        headers.insert("Location".into(), json!(location));
    }
    json!({
        "body": reply.body.clone().unwrap_or(Value::Null),
        "httpHeaders": headers,
        "httpStatusCode": reply.status.as_u16(),
        "referenceId": reference_id,
    })
}

fn halted(message: &str) -> Reply {
    Reply::error(StatusCode::BAD_REQUEST, "PROCESSING_HALTED", message, &[])
}

fn composite(store: &mut Store, context: &Context<'_>, body: &[u8]) -> Reply {
    let request: Value = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(_) => {
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "JSON_PARSER_ERROR",
                "The composite request body is not valid JSON",
                &[],
            );
        }
    };
    let all_or_none = request.get("allOrNone").and_then(Value::as_bool) == Some(true);
    let Some(subrequests) = request.get("compositeRequest").and_then(Value::as_array) else {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "compositeRequest is required",
            &[],
        );
    };
    if subrequests.len() > MAX_COMPOSITE_SUBREQUESTS {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            &format!("Composite requests can have at most {MAX_COMPOSITE_SUBREQUESTS} subrequests"),
            &[],
        );
    }
    let snapshot = all_or_none.then(|| store.clone());
    let prefix = format!("/services/data/{}/", context.version);
    let mut results: HashMap<String, Value> = HashMap::new();
    let mut items: Vec<(String, Reply)> = Vec::new();
    let mut failed = false;
    for subrequest in subrequests {
        let reference_id = subrequest
            .get("referenceId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if failed && all_or_none {
            items.push((reference_id, halted(ROLLED_BACK)));
            continue;
        }
        let reply = run_subrequest(store, context, &prefix, subrequest, &results);
        if reply.is_success() {
            if let Some(body) = &reply.body {
                results.insert(reference_id.clone(), body.clone());
            }
        } else {
            failed = true;
        }
        items.push((reference_id, reply));
    }
    if failed && let Some(snapshot) = snapshot {
        *store = snapshot;
        for (_, reply) in &mut items {
            if reply.is_success() {
                *reply = halted(ROLLED_BACK);
            }
        }
    }
    let responses: Vec<Value> = items
        .iter()
        .map(|(reference_id, reply)| composite_item(reply, reference_id))
        .collect();
    Reply::ok(json!({ "compositeResponse": responses }))
}

fn run_subrequest(
    store: &mut Store,
    context: &Context<'_>,
    prefix: &str,
    subrequest: &Value,
    results: &HashMap<String, Value>,
) -> Reply {
    let method = subrequest
        .get("method")
        .and_then(Value::as_str)
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    let url = subrequest.get("url").and_then(Value::as_str);
    let (Some(method), Some(url)) = (method, url) else {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "Each subrequest needs a method and a url",
            &[],
        );
    };
    let body = match subrequest.get("body") {
        Some(body) => body.to_string(),
        None => String::new(),
    };
    let (url, body) = match (
        resolve_references(url, results),
        resolve_references(&body, results),
    ) {
        (Ok(url), Ok(body)) => (url, body),
        (Err(reference), _) | (_, Err(reference)) => {
            return halted(&format!(
                "Invalid reference specified. No value for {reference} found. Provided \
                 referenceId ids must be of a previous subrequest that succeeded."
            ));
        }
    };
    let Some(rest) = url.strip_prefix(prefix) else {
        return not_found();
    };
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    // Decoded segment by segment, as the router decodes a request's path.
    let decoded: Vec<String> = path
        .trim_end_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    dispatch(store, context, &method, &segments, query, body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_case_safe_suffix() {
        let id = new_id("001");
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("0015g"));
        assert!(id.ends_with("AAA"));
        // `Q` is the third character of the first chunk: bit 2, the fifth letter.
        assert!(new_id("00Q").ends_with("EAA"));
    }

    #[test]
    fn parses_the_soql_subset() {
        let query = parse_soql(
            "select Id, Name FROM Account where Name = 'O\\'Brien & Co' and Rating >= 3 \
             AND LastModifiedDate < 2024-05-01T09:30:00Z order by Name desc LIMIT 5",
        );
        let condition = |field: &str, op, literal| Condition {
            field: field.into(),
            op,
            literal,
        };
        assert_eq!(
            query,
            Ok(Soql {
                fields: vec!["Id".into(), "Name".into()],
                kind: "Account".into(),
                conditions: vec![
                    condition("Name", Comparison::Equal, json!("O'Brien & Co")),
                    condition("Rating", Comparison::GreaterOrEqual, json!(3.0)),
                    condition(
                        "LastModifiedDate",
                        Comparison::Less,
                        json!("2024-05-01T09:30:00Z")
                    ),
                ],
                order_by: Some(("Name".into(), true)),
                limit: Some(5),
            })
        );
        let ops = parse_soql("SELECT Id FROM Account WHERE A != 1 AND B > 2 AND C <= 3 ORDER BY A")
            .map(|q| {
                (
                    q.conditions.iter().map(|c| c.op).collect::<Vec<_>>(),
                    q.order_by,
                )
            });
        assert_eq!(
            ops,
            Ok((
                vec![
                    Comparison::NotEqual,
                    Comparison::Greater,
                    Comparison::LessOrEqual
                ],
                Some(("A".into(), false))
            ))
        );
        for malformed in [
            "",
            "SELECT FROM Account",
            "SELECT Id Account",
            "SELECT Id FROM",
            "SELECT Id FROM Account WHERE Name",
            "SELECT Id FROM Account WHERE Name = 'open",
            "SELECT Id FROM Account WHERE Name ! 'x'",
            "SELECT Id FROM Account ORDER Name",
            "SELECT Id FROM Account WHERE CreatedDate > 2024-05-01",
            "SELECT Id FROM Account LIMIT many",
        ] {
            assert!(parse_soql(malformed).is_err(), "{malformed}");
        }
    }

    #[test]
    fn datetimes_compare_by_time_whatever_their_notation() {
        use std::cmp::Ordering;
        let stored = json!("2024-05-01T09:30:00.250+0000");
        let at = |literal: &str| soql_compare(Some(&stored), &json!(literal));
        assert_eq!(at("2024-05-01T09:30:00Z"), Some(Ordering::Greater));
        assert_eq!(at("2024-05-01T09:30:00.25+00:00"), Some(Ordering::Equal));
        assert_eq!(at("2024-05-01T09:30:01Z"), Some(Ordering::Less));
        assert_eq!(datetime_key("2024-05-01T09:30:00+0200"), None);
        assert_eq!(
            soql_compare(Some(&json!("acme")), &json!("ACME")),
            Some(Ordering::Equal)
        );
        assert_eq!(soql_compare(None, &json!(1)), Some(Ordering::Less));
    }

    #[test]
    fn resolves_composite_references() {
        let results = HashMap::from([("acct".to_owned(), json!({"id": "001X", "n": 2}))]);
        assert_eq!(
            resolve_references("/sobjects/Account/@{acct.id}?n=@{acct.n}", &results),
            Ok("/sobjects/Account/001X?n=2".to_owned())
        );
        assert_eq!(
            resolve_references("@{missing.id}", &results),
            Err("missing.id".to_owned())
        );
    }

    #[test]
    fn versions() {
        assert!(is_version("v60.0"));
        assert!(is_version("v59.0"));
        assert!(!is_version("60.0"));
        assert!(!is_version("vX.0"));
        assert!(!is_version("v60"));
    }
}
