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
//! | `PATCH /sobjects/{type}/{field}/{value}` | upsert by external id: `201 {"id","success","errors","created":true}` created; updated, `200 {"id","success":true,"errors":[],"created":false}` (API v46.0 and later, as Salesforce answers) or `204` (earlier versions) |
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

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Map, Value, json};

use crate::server::{StandinCore, has_bearer_token, lock, standin_handle};

mod composite;
mod query;
mod records;
mod reply;
use composite::composite;
use query::{query_more, run_query};
use records::{create, get_record, update, upsert};
use reply::{Reply, SalesforceFaults, not_found, unauthorized};

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

standin_handle!(
    SalesforceStandin,
    "a Salesforce connector as its instance URL",
    "The error bodies are Salesforce's arrays: `500` `UNKNOWN_EXCEPTION`; `429` `REQUEST_LIMIT_EXCEEDED` with `Retry-After`; `401` `INVALID_SESSION_ID`. They carry `Sforce-Limit-Info` like every response."
);

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
        ("PATCH", ["sobjects", kind, field, value]) => {
            upsert(store, context, kind, field, value, body)
        }
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

#[cfg(test)]
mod tests;
