//! A stand-in of the HubSpot CRM v3 objects API (deals and companies), and signed webhook
//! deliveries as HubSpot sends them.
//!
//! Endpoints (all under `/crm/v3/objects/{type}`, `{type}` being `deals` or `companies`, all
//! behind `Authorization: Bearer` with the private app token given to [`HubspotStandin::start`]):
//!
//! | method and path | answer |
//! | --- | --- |
//! | `POST /` `{"properties","associations"?}` | `201` the object; `400` |
//! | `GET /?limit=&after=` | `200 {"results","paging":{"next":{"after","link"}}}`, `paging` absent on the last page |
//! | `GET /{id}?properties=a,b&associations=companies` | `200` the object; `404` |
//! | `PATCH /{id}` `{"properties"}` | `200` the object; `400`, `404` |
//! | `POST /search` `{"filterGroups","properties","limit","after"}` | `200 {"total","results","paging"}` |
//! | `POST /batch/create` `{"inputs":[{"properties"}]}` | `201 {"status":"COMPLETE","results",...}`; `400`, nothing created |
//! | `POST /batch/read` `{"inputs":[{"id"}],"properties"}` | `200 {"status":"COMPLETE","results",...}`; `207` with `"errors"` naming the ids not found |
//!
//! An object is `{"id","properties","createdAt","updatedAt","archived":false}`. Search filters
//! within a group must all hold and any group may match; the operators are `EQ`, `NEQ` and
//! `HAS_PROPERTY`. A deal needs `dealname` and a `dealstage` of the default pipeline
//! ([`DEAL_STAGES`]).
//!
//! Errors have HubSpot's shape, `{"status":"error","message","correlationId","category"}`:
//! `401` `INVALID_AUTHENTICATION`, `404` `OBJECT_NOT_FOUND`, `400` `VALIDATION_ERROR`.
//!
//! A create may associate the new object with existing objects of the other type, as HubSpot's
//! v3 create does: `"associations": [{"to": {"id"}, "types": [{"associationCategory",
//! "associationTypeId"}]}]` (a target that does not exist is `400`). A read with
//! `?associations=companies` (on a deal) or `deals` (on a company) adds `"associations":
//! {"companies": {"results": [{"id", "type": "deal_to_company"}]}}`.
//!
//! Without `?properties=`, reads return every property the object has (HubSpot returns a default
//! set); with it, just those, `null` where unset.
//!
//! [`webhook_delivery`] builds what HubSpot POSTs to a subscriber, signed with signature v3:
//!
//! ```
//! use junction_standins::hubspot;
//!
//! let closed_won = hubspot::property_change_event("deal", 9876543201, "dealstage", "closedwon");
//! let delivery = hubspot::webhook_delivery(
//!     "the app's client secret",
//!     "http://127.0.0.1:8080/v1/webhooks/hubspot",
//!     &[closed_won],
//! );
//! // POST `delivery.body` to `delivery.uri` with these headers.
//! let headers = delivery.headers();
//! assert_eq!(headers[1].0, "X-HubSpot-Signature-v3");
//! assert_eq!(headers[2], ("X-HubSpot-Request-Timestamp", delivery.timestamp_ms.to_string()));
//! ```

// Handlers build their answers with `Result<_, Response>`, the error being the response to send.
#![allow(clippy::result_large_err)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2_011::Sha256;

use crate::server::{FaultResponses, StandinCore, has_bearer_token, lock, rfc3339_millis};
use crate::{Misbehaviour, RecordedRequest};

/// The portal (account) id the stand-in's objects and webhook events belong to.
pub const PORTAL_ID: u64 = 62515;

/// The deal stages of the default sales pipeline.
pub const DEAL_STAGES: [&str; 7] = [
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
];

/// The per-ten-seconds request limit advertised in `X-HubSpot-RateLimit-Max`.
pub const RATE_LIMIT_MAX: u32 = 190;

/// The daily request limit advertised in `X-HubSpot-RateLimit-Daily`.
pub const RATE_LIMIT_DAILY: u32 = 650_000;

const DEFAULT_PAGE_SIZE: usize = 10;
const MAX_PAGE_SIZE: usize = 100;
const MAX_BATCH: usize = 100;
const FIRST_OBJECT_ID: u64 = 9_876_543_200;

/// The header carrying a v3 webhook signature.
pub const SIGNATURE_HEADER: &str = "X-HubSpot-Signature-v3";

/// The header carrying a v3 webhook's timestamp, in Unix milliseconds.
pub const TIMESTAMP_HEADER: &str = "X-HubSpot-Request-Timestamp";

/// A running HubSpot CRM stand-in on `127.0.0.1`.
///
/// Clones share one server and one store. The server stops when the last clone is dropped, or
/// earlier through [`HubspotStandin::shutdown`].
#[derive(Clone)]
pub struct HubspotStandin {
    core: Arc<StandinCore>,
    state: Arc<HubspotState>,
}

impl std::fmt::Debug for HubspotStandin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubspotStandin")
            .field("base_url", &self.core.base_url())
            .finish_non_exhaustive()
    }
}

impl HubspotStandin {
    /// Starts on 127.0.0.1 with an ephemeral port; accepts `Authorization: Bearer {token}`.
    ///
    /// Must be called inside a Tokio runtime, which the server task then runs on.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start(token: &str) -> anyhow::Result<HubspotStandin> {
        let token = token.to_owned();
        let mut created_state = None;
        let core = StandinCore::start("hubspot", HubspotFaults, |base_url| {
            let state = Arc::new(HubspotState {
                base_url,
                token,
                store: Mutex::new(Store::default()),
            });
            created_state = Some(state.clone());
            router(state)
        })
        .await?;
        let state = created_state
            .ok_or_else(|| anyhow::anyhow!("the hubspot stand-in router was never built"))?;
        Ok(HubspotStandin {
            core: Arc::new(core),
            state,
        })
    }

    /// The base URL to give a HubSpot connector, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        self.core.base_url()
    }

    /// The `127.0.0.1:PORT` authority, for outbound-host allowlists.
    pub fn host(&self) -> String {
        self.core.host()
    }

    /// The stored deals in creation order, each with all its properties.
    pub fn deals(&self) -> Vec<Value> {
        self.objects(ObjectType::Deals)
    }

    /// The stored companies in creation order, each with all its properties.
    pub fn companies(&self) -> Vec<Value> {
        self.objects(ObjectType::Companies)
    }

    fn objects(&self, kind: ObjectType) -> Vec<Value> {
        let store = lock(&self.state.store);
        store
            .objects
            .iter()
            .filter(|o| o.kind == kind)
            .map(|o| o.to_json(None))
            .collect()
    }

    /// Every request received so far, in arrival order, including refused and misbehaved ones.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.core.requests()
    }

    /// Queues `misbehaviour` for the next requests; see [`Misbehaviour`] for the order of play.
    ///
    /// The error bodies are HubSpot's: `500` category `INTERNAL_ERROR`; `429` category
    /// `RATE_LIMITS` (`"errorType":"RATE_LIMIT"`, `"policyName":"TEN_SECONDLY_ROLLING"`) with
    /// `Retry-After` and the `X-HubSpot-RateLimit-*` headers (`-Max` [`RATE_LIMIT_MAX`],
    /// `-Remaining: 0`, `-Interval-Milliseconds: 10000`, `-Daily` [`RATE_LIMIT_DAILY`],
    /// `-Daily-Remaining`); `401` category `INVALID_AUTHENTICATION`.
    pub fn misbehave(&self, misbehaviour: Misbehaviour) {
        self.core.misbehave(misbehaviour);
    }

    /// Stops the server for every clone and waits until it has stopped. Calling it again does
    /// nothing.
    pub async fn shutdown(&self) {
        self.core.shutdown().await;
    }
}

struct HubspotState {
    base_url: String,
    token: String,
    store: Mutex<Store>,
}

#[derive(Default)]
struct Store {
    objects: Vec<CrmObject>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjectType {
    Deals,
    Companies,
}

impl ObjectType {
    fn parse(name: &str) -> Option<ObjectType> {
        match name {
            "deals" | "deal" | "0-3" => Some(ObjectType::Deals),
            "companies" | "company" | "0-2" => Some(ObjectType::Companies),
            _ => None,
        }
    }
}

#[derive(Clone)]
struct CrmObject {
    kind: ObjectType,
    id: u64,
    properties: Map<String, Value>,
    /// Ids of the objects of the other type this one is associated with
    /// (a deal's companies, a company's deals), given at creation.
    associations: Vec<u64>,
    created_at: String,
    updated_at: String,
}

impl CrmObject {
    /// The API shape; with `only`, just those properties (`null` when unset) besides the ones
    /// HubSpot always returns.
    fn to_json(&self, only: Option<&[String]>) -> Value {
        let mut properties = match only {
            None => self.properties.clone(),
            Some(names) => names
                .iter()
                .map(|n| {
                    let value = self.properties.get(n).cloned().unwrap_or(Value::Null);
                    (n.clone(), value)
                })
                .collect(),
        };
        properties.insert("hs_object_id".into(), json!(self.id.to_string()));
        properties.insert("createdate".into(), json!(self.created_at));
        properties.insert("hs_lastmodifieddate".into(), json!(self.updated_at));
        json!({
            "id": self.id.to_string(),
            "properties": properties,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "archived": false,
        })
    }
}

static CORRELATION: AtomicU64 = AtomicU64::new(1);

/// A fresh UUID-shaped correlation id, as HubSpot puts in every error.
fn correlation_id() -> String {
    let n = CORRELATION.fetch_add(1, Ordering::Relaxed);
    format!("5e1c8f3a-0d2b-4c6e-9a7f-{n:012x}")
}

fn hubspot_error(status: StatusCode, category: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "status": "error",
            "message": message,
            "correlationId": correlation_id(),
            "category": category,
        })),
    )
        .into_response()
}

fn validation_error(message: &str) -> Response {
    hubspot_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
}

fn unauthorized() -> Response {
    hubspot_error(
        StatusCode::UNAUTHORIZED,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and \
         you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
    )
}

fn object_not_found(id: &str) -> Response {
    hubspot_error(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        &format!("Object not found.  objectId are usually numeric. ({id})"),
    )
}

struct HubspotFaults;

impl FaultResponses for HubspotFaults {
    fn server_error(&self) -> Response {
        hubspot_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "internal error",
        )
    }

    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": correlation_id(),
                "policyName": "TEN_SECONDLY_ROLLING",
                "category": "RATE_LIMITS",
            })),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        headers.insert("x-hubspot-ratelimit-max", HeaderValue::from(RATE_LIMIT_MAX));
        headers.insert("x-hubspot-ratelimit-remaining", HeaderValue::from(0u32));
        headers.insert(
            "x-hubspot-ratelimit-interval-milliseconds",
            HeaderValue::from(10_000u32),
        );
        headers.insert(
            "x-hubspot-ratelimit-daily",
            HeaderValue::from(RATE_LIMIT_DAILY),
        );
        headers.insert(
            "x-hubspot-ratelimit-daily-remaining",
            HeaderValue::from(RATE_LIMIT_DAILY - 1),
        );
        response
    }

    fn unauthorized(&self) -> Response {
        unauthorized()
    }
}

fn router(state: Arc<HubspotState>) -> Router {
    Router::new()
        .route("/crm/v3/objects/{object_type}", get(list).post(create))
        .route("/crm/v3/objects/{object_type}/search", post(search))
        .route(
            "/crm/v3/objects/{object_type}/batch/create",
            post(batch_create),
        )
        .route("/crm/v3/objects/{object_type}/batch/read", post(batch_read))
        .route(
            "/crm/v3/objects/{object_type}/{id}",
            get(get_object).patch(update),
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
    State(state): State<Arc<HubspotState>>,
    request: Request,
    next: Next,
) -> Response {
    if has_bearer_token(request.headers(), &state.token) {
        next.run(request).await
    } else {
        unauthorized()
    }
}

async fn not_found() -> Response {
    hubspot_error(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", "Not Found")
}

async fn method_not_allowed() -> Response {
    hubspot_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "VALIDATION_ERROR",
        "Method Not Allowed",
    )
}

/// Resolves `{object_type}`, or answers the 400 HubSpot gives for an unknown type.
fn object_type(name: &str) -> Result<ObjectType, Response> {
    ObjectType::parse(name)
        .ok_or_else(|| validation_error(&format!("Unable to infer object type from: {name}")))
}

fn parse_json(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| {
        validation_error(&format!(
            "Invalid input JSON on line {}, column {}: {e}",
            e.line(),
            e.column()
        ))
    })
}

/// The `properties` object of an input, as strings (HubSpot stores every value as a string).
fn input_properties(input: &Value) -> Result<Map<String, Value>, Response> {
    let Some(properties) = input.get("properties").and_then(Value::as_object) else {
        return Err(validation_error(
            "Invalid input JSON: the \"properties\" object is required",
        ));
    };
    Ok(properties
        .iter()
        .map(|(name, value)| {
            let value = match value {
                Value::String(_) | Value::Null => value.clone(),
                other => Value::String(other.to_string()),
            };
            (name.clone(), value)
        })
        .collect())
}

/// Checks the properties an object would have after a create or update.
fn validate(kind: ObjectType, properties: &Map<String, Value>) -> Result<(), Response> {
    if kind != ObjectType::Deals {
        return Ok(());
    }
    let text = |name: &str| properties.get(name).and_then(Value::as_str).unwrap_or("");
    if text("dealname").trim().is_empty() {
        return Err(validation_error(
            "Property values were not valid: [{\"isValid\":false,\"message\":\"dealname is \
             required\",\"error\":\"REQUIRED_FIELD\",\"name\":\"dealname\"}]",
        ));
    }
    let stage = text("dealstage");
    if !DEAL_STAGES.contains(&stage) {
        return Err(validation_error(&format!(
            "Property values were not valid: [{{\"isValid\":false,\"message\":\"{stage} was not \
             one of the allowed options: {}\",\"error\":\"INVALID_OPTION\",\"name\":\"dealstage\"}}]",
            DEAL_STAGES.join(", ")
        )));
    }
    Ok(())
}

fn new_object(
    store: &Store,
    kind: ObjectType,
    mut properties: Map<String, Value>,
    associations: Vec<u64>,
) -> CrmObject {
    let now = rfc3339_millis(SystemTime::now());
    if kind == ObjectType::Deals && !properties.contains_key("pipeline") {
        properties.insert("pipeline".into(), json!("default"));
    }
    CrmObject {
        kind,
        id: FIRST_OBJECT_ID + store.objects.len() as u64 + 1,
        properties,
        associations,
        created_at: now.clone(),
        updated_at: now,
    }
}

/// The ids a create's `associations` (`[{"to": {"id"}, "types": [...]}]`) point at, each an
/// existing object of the other type.
fn input_associations(store: &Store, kind: ObjectType, body: &Value) -> Result<Vec<u64>, Response> {
    let other = match kind {
        ObjectType::Deals => ObjectType::Companies,
        ObjectType::Companies => ObjectType::Deals,
    };
    let Some(list) = body.get("associations") else {
        return Ok(Vec::new());
    };
    let Some(list) = list.as_array() else {
        return Err(validation_error("associations must be an array"));
    };
    list.iter()
        .map(|a| {
            let id = match &a["to"]["id"] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(validation_error("associations[].to.id is required")),
            };
            find(store, other, &id)
                .map(|index| store.objects[index].id)
                .ok_or_else(|| {
                    validation_error(&format!(
                        "association target {id} does not exist (associations[].to.id)"
                    ))
                })
        })
        .collect()
}

/// `{"companies": {"results": [{"id", "type": "deal_to_company"}]}}` for the types `names`
/// asks for (`companies`, `deals`).
fn associations_json(store: &Store, object: &CrmObject, names: &str) -> Value {
    let mut out = Map::new();
    for name in names.split(',').map(str::trim) {
        let Some(other) = ObjectType::parse(name) else {
            continue;
        };
        if other == object.kind {
            continue;
        }
        let ids: Vec<u64> = match object.kind {
            // A deal holds its companies.
            ObjectType::Deals => object.associations.clone(),
            // A company's deals are the deals that hold it.
            ObjectType::Companies => store
                .objects
                .iter()
                .filter(|o| o.kind == ObjectType::Deals && o.associations.contains(&object.id))
                .map(|o| o.id)
                .collect(),
        };
        let kind = match object.kind {
            ObjectType::Deals => "deal_to_company",
            ObjectType::Companies => "company_to_deal",
        };
        let results: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id.to_string(), "type": kind}))
            .collect();
        let key = match other {
            ObjectType::Deals => "deals",
            ObjectType::Companies => "companies",
        };
        out.insert(key.into(), json!({ "results": results }));
    }
    Value::Object(out)
}

async fn create(
    State(state): State<Arc<HubspotState>>,
    Path(object_type_name): Path<String>,
    body: Bytes,
) -> Response {
    let created = object_type(&object_type_name).and_then(|kind| {
        let body = parse_json(&body)?;
        let properties = input_properties(&body)?;
        validate(kind, &properties)?;
        let mut store = lock(&state.store);
        let associations = input_associations(&store, kind, &body)?;
        let object = new_object(&store, kind, properties, associations);
        let json = object.to_json(None);
        store.objects.push(object);
        Ok(json)
    });
    match created {
        Ok(json) => (StatusCode::CREATED, axum::Json(json)).into_response(),
        Err(response) => response,
    }
}

#[derive(Deserialize)]
struct GetParams {
    properties: Option<String>,
    associations: Option<String>,
}

fn property_list(names: Option<&str>) -> Option<Vec<String>> {
    names.map(|n| {
        n.split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

async fn get_object(
    State(state): State<Arc<HubspotState>>,
    Path((object_type_name, id)): Path<(String, String)>,
    Query(params): Query<GetParams>,
) -> Response {
    let kind = match object_type(&object_type_name) {
        Ok(kind) => kind,
        Err(response) => return response,
    };
    let store = lock(&state.store);
    let only = property_list(params.properties.as_deref());
    match find(&store, kind, &id) {
        Some(index) => {
            let object = &store.objects[index];
            let mut json = object.to_json(only.as_deref());
            if let Some(names) = params.associations.as_deref() {
                json["associations"] = associations_json(&store, object, names);
            }
            axum::Json(json).into_response()
        }
        None => object_not_found(&id),
    }
}

fn find(store: &Store, kind: ObjectType, id: &str) -> Option<usize> {
    let id = id.parse::<u64>().ok()?;
    store
        .objects
        .iter()
        .position(|o| o.kind == kind && o.id == id)
}

async fn update(
    State(state): State<Arc<HubspotState>>,
    Path((object_type_name, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let updated = object_type(&object_type_name).and_then(|kind| {
        let properties = input_properties(&parse_json(&body)?)?;
        let mut store = lock(&state.store);
        let Some(index) = find(&store, kind, &id) else {
            return Err(object_not_found(&id));
        };
        let mut merged = store.objects[index].properties.clone();
        merged.extend(properties);
        validate(kind, &merged)?;
        let object = &mut store.objects[index];
        object.properties = merged;
        object.updated_at = rfc3339_millis(SystemTime::now());
        Ok(object.to_json(None))
    });
    match updated {
        Ok(json) => axum::Json(json).into_response(),
        Err(response) => response,
    }
}

#[derive(Deserialize)]
struct ListParams {
    limit: Option<usize>,
    after: Option<String>,
    properties: Option<String>,
}

async fn list(
    State(state): State<Arc<HubspotState>>,
    Path(object_type_name): Path<String>,
    Query(params): Query<ListParams>,
) -> Response {
    let kind = match object_type(&object_type_name) {
        Ok(kind) => kind,
        Err(response) => return response,
    };
    let limit = params
        .limit
        .unwrap_or(DEFAULT_PAGE_SIZE)
        .clamp(1, MAX_PAGE_SIZE);
    // `after` is the id of the first object of the page, as HubSpot's cursors are for lists.
    let after = match params.after.as_deref().map(str::parse::<u64>) {
        None => 0,
        Some(Ok(after)) => after,
        Some(Err(_)) => return validation_error("Invalid value for after; expected a cursor"),
    };
    let only = property_list(params.properties.as_deref());
    let store = lock(&state.store);
    let mut matching = store
        .objects
        .iter()
        .filter(|o| o.kind == kind && o.id >= after);
    let results: Vec<Value> = matching
        .by_ref()
        .take(limit)
        .map(|o| o.to_json(only.as_deref()))
        .collect();
    let mut page = json!({ "results": results });
    if let (Some(next), Some(object)) = (matching.next(), page.as_object_mut()) {
        let mut link = format!(
            "{}/crm/v3/objects/{object_type_name}?limit={limit}&after={}",
            state.base_url, next.id
        );
        if let Some(properties) = &params.properties {
            link.push_str(&format!("&properties={properties}"));
        }
        object.insert(
            "paging".into(),
            json!({ "next": { "after": next.id.to_string(), "link": link } }),
        );
    }
    axum::Json(page).into_response()
}

/// Whether `object` passes one search filter.
fn filter_holds(object: &CrmObject, filter: &Value) -> Result<bool, String> {
    let name = filter
        .get("propertyName")
        .and_then(Value::as_str)
        .ok_or("a filter needs a propertyName")?;
    let actual = match name {
        "hs_object_id" => Some(object.id.to_string()),
        _ => object
            .properties
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let expected = match filter.get("value") {
        Some(Value::String(value)) => Some(value.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    let operator = filter
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or("EQ");
    // Enumerated and text values compare case-insensitively in HubSpot search.
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    match operator {
        "EQ" => Ok(matches!((&actual, &expected), (Some(a), Some(b)) if same(a, b))),
        "NEQ" => Ok(!matches!((&actual, &expected), (Some(a), Some(b)) if same(a, b))),
        "HAS_PROPERTY" => Ok(actual.is_some_and(|a| !a.is_empty())),
        other => Err(format!("Unsupported operator for this stand-in: {other}")),
    }
}

async fn search(
    State(state): State<Arc<HubspotState>>,
    Path(object_type_name): Path<String>,
    body: Bytes,
) -> Response {
    let kind = match object_type(&object_type_name) {
        Ok(kind) => kind,
        Err(response) => return response,
    };
    let request = match parse_json(&body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let groups: Vec<Value> = request
        .get("filterGroups")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let limit = request
        .get("limit")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_PAGE_SIZE, |l| {
            usize::try_from(l).unwrap_or(MAX_PAGE_SIZE)
        })
        .clamp(1, 200);
    // Search cursors are offsets into the result, as HubSpot's are.
    let offset = match request.get("after") {
        None | Some(Value::Null) => 0,
        Some(Value::String(after)) => after.parse::<usize>().unwrap_or(usize::MAX),
        Some(Value::Number(after)) => after
            .as_u64()
            .and_then(|a| usize::try_from(a).ok())
            .unwrap_or(usize::MAX),
        Some(_) => usize::MAX,
    };
    let only: Option<Vec<String>> = request
        .get("properties")
        .and_then(Value::as_array)
        .map(|p| {
            p.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        });

    let store = lock(&state.store);
    let mut matched = Vec::new();
    for object in store.objects.iter().filter(|o| o.kind == kind) {
        let mut any_group = groups.is_empty();
        for group in &groups {
            let filters = group
                .get("filters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut all = true;
            for filter in &filters {
                match filter_holds(object, filter) {
                    Ok(holds) => all &= holds,
                    Err(message) => return validation_error(&message),
                }
            }
            any_group |= all;
        }
        if any_group {
            matched.push(object);
        }
    }
    let total = matched.len();
    let results: Vec<Value> = matched
        .iter()
        .skip(offset)
        .take(limit)
        .map(|o| o.to_json(only.as_deref()))
        .collect();
    let mut page = json!({ "total": total, "results": results });
    let next = offset.saturating_add(limit);
    if next < total
        && let Some(object) = page.as_object_mut()
    {
        object.insert(
            "paging".into(),
            json!({ "next": { "after": next.to_string() } }),
        );
    }
    axum::Json(page).into_response()
}

/// The `inputs` of a batch request, at most [`MAX_BATCH`] of them.
fn batch_inputs(request: &Value) -> Result<&Vec<Value>, Response> {
    let Some(inputs) = request.get("inputs").and_then(Value::as_array) else {
        return Err(validation_error(
            "Invalid input JSON: \"inputs\" is required",
        ));
    };
    if inputs.len() > MAX_BATCH {
        return Err(validation_error(&format!(
            "Batch input size {} exceeds the maximum of {MAX_BATCH}",
            inputs.len()
        )));
    }
    Ok(inputs)
}

async fn batch_create(
    State(state): State<Arc<HubspotState>>,
    Path(object_type_name): Path<String>,
    body: Bytes,
) -> Response {
    let started_at = rfc3339_millis(SystemTime::now());
    let created = object_type(&object_type_name).and_then(|kind| {
        let request = parse_json(&body)?;
        let inputs = batch_inputs(&request)?;
        let mut all_properties = Vec::with_capacity(inputs.len());
        for input in inputs {
            let properties = input_properties(input)?;
            validate(kind, &properties)?;
            all_properties.push(properties);
        }
        let mut store = lock(&state.store);
        let mut results = Vec::with_capacity(all_properties.len());
        for properties in all_properties {
            let object = new_object(&store, kind, properties, Vec::new());
            results.push(object.to_json(None));
            store.objects.push(object);
        }
        Ok(results)
    });
    match created {
        Ok(results) => (
            StatusCode::CREATED,
            axum::Json(json!({
                "status": "COMPLETE",
                "results": results,
                "startedAt": started_at,
                "completedAt": rfc3339_millis(SystemTime::now()),
            })),
        )
            .into_response(),
        Err(response) => response,
    }
}

async fn batch_read(
    State(state): State<Arc<HubspotState>>,
    Path(object_type_name): Path<String>,
    body: Bytes,
) -> Response {
    let started_at = rfc3339_millis(SystemTime::now());
    let read = object_type(&object_type_name).and_then(|kind| {
        let request = parse_json(&body)?;
        let inputs = batch_inputs(&request)?;
        let only: Option<Vec<String>> =
            request
                .get("properties")
                .and_then(Value::as_array)
                .map(|p| {
                    p.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                });
        let store = lock(&state.store);
        let mut results = Vec::new();
        let mut missing = Vec::new();
        for input in inputs {
            let id = match input.get("id") {
                Some(Value::String(id)) => id.clone(),
                Some(other) => other.to_string(),
                None => {
                    return Err(validation_error(
                        "Invalid input JSON: each input needs an \"id\"",
                    ));
                }
            };
            match find(&store, kind, &id) {
                Some(index) => results.push(store.objects[index].to_json(only.as_deref())),
                None => missing.push(id),
            }
        }
        Ok((kind, results, missing))
    });
    let (kind, results, missing) = match read {
        Ok(read) => read,
        Err(response) => return response,
    };
    let mut answer = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": started_at,
        "completedAt": rfc3339_millis(SystemTime::now()),
    });
    if missing.is_empty() {
        return axum::Json(answer).into_response();
    }
    let singular = match kind {
        ObjectType::Deals => "DEAL",
        ObjectType::Companies => "COMPANY",
    };
    if let Some(object) = answer.as_object_mut() {
        object.insert("numErrors".into(), json!(1));
        object.insert(
            "errors".into(),
            json!([{
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": format!(
                    "Could not get some {singular} objects, they may be deleted or not exist. \
                     Check that ids are valid."
                ),
                "context": { "ids": missing },
            }]),
        );
    }
    (StatusCode::MULTI_STATUS, axum::Json(answer)).into_response()
}

/// One webhook event of a property change, as HubSpot sends in a delivery's JSON array, e.g.
/// `property_change_event("deal", 9876543201, "dealstage", "closedwon")`.
///
/// `object` is the object type's singular name (`deal`, `company`, `contact`); the event's
/// `subscriptionType` is `{object}.propertyChange`.
pub fn property_change_event(object: &str, object_id: u64, property: &str, value: &str) -> Value {
    static EVENT_ID: AtomicU64 = AtomicU64::new(100);
    let occurred_at = crate::server::unix_millis(SystemTime::now());
    json!({
        "eventId": EVENT_ID.fetch_add(1, Ordering::Relaxed),
        "subscriptionId": 2_473_812,
        "portalId": PORTAL_ID,
        "appId": 1_160_452,
        "occurredAt": occurred_at,
        "subscriptionType": format!("{object}.propertyChange"),
        "attemptNumber": 0,
        "objectId": object_id,
        "propertyName": property,
        "propertyValue": value,
        "changeSource": "CRM",
        "sourceId": "userId:1234567",
    })
}

/// A webhook delivery ready to POST: the body and the headers HubSpot signs it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// Always `POST`.
    pub method: String,
    /// The full URI the delivery is signed for and must be sent to.
    pub uri: String,
    /// The JSON array of events.
    pub body: String,
    /// `X-HubSpot-Request-Timestamp`: Unix milliseconds when it was signed.
    pub timestamp_ms: u64,
    /// `X-HubSpot-Signature-v3`: the base64 HMAC-SHA256.
    pub signature: String,
}

impl WebhookDelivery {
    /// The headers to send: content type, signature and timestamp.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Content-Type", "application/json".to_owned()),
            (SIGNATURE_HEADER, self.signature.clone()),
            (TIMESTAMP_HEADER, self.timestamp_ms.to_string()),
        ]
    }
}

/// Builds a delivery of `events` to `uri` (the subscriber's full URL, query included), signed
/// now with the app's `client_secret`.
pub fn webhook_delivery(client_secret: &str, uri: &str, events: &[Value]) -> WebhookDelivery {
    let timestamp_ms = crate::server::unix_millis(SystemTime::now());
    webhook_delivery_at(client_secret, uri, events, timestamp_ms)
}

/// [`webhook_delivery`] signed at `timestamp_ms` (Unix milliseconds), e.g. one too old for the
/// receiver's replay window.
pub fn webhook_delivery_at(
    client_secret: &str,
    uri: &str,
    events: &[Value],
    timestamp_ms: u64,
) -> WebhookDelivery {
    let body = Value::Array(events.to_vec()).to_string();
    let timestamp = timestamp_ms.to_string();
    let signature = sign_v3(client_secret, "POST", uri, body.as_bytes(), &timestamp);
    WebhookDelivery {
        method: "POST".into(),
        uri: uri.to_owned(),
        body,
        timestamp_ms,
        signature,
    }
}

/// HubSpot's signature v3: base64 of HMAC-SHA256, keyed with the app's client secret, over
/// `method + uri + body + timestamp`, where `uri` has the percent-escapes HubSpot lists decoded.
pub fn sign_v3(
    client_secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: &str,
) -> String {
    // HMAC takes a key of any length, so `new_from_slice` cannot fail; fall back to an empty
    // signature rather than panic should that ever change.
    let Ok(mac) = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes()) else {
        return String::new();
    };
    let mac = mac
        .chain_update(method.as_bytes())
        .chain_update(decode_listed_escapes(uri).as_bytes())
        .chain_update(body)
        .chain_update(timestamp.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// Decodes the escapes HubSpot's v3 documentation says to decode before signing
/// (`%3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B`, either case); others stay as sent.
fn decode_listed_escapes(uri: &str) -> String {
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let decoded = rest
            .get(at + 1..at + 3)
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .map(char::from)
            .filter(|c| ":/?@!$'()*,;".contains(*c));
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_only_the_listed_escapes() {
        assert_eq!(
            decode_listed_escapes("https://h/p%3Fa%3db%2Cc%2fd%20e%"),
            "https://h/p?a%3db,c/d%20e%"
        );
        assert_eq!(decode_listed_escapes("plain"), "plain");
        assert_eq!(decode_listed_escapes("%4"), "%4");
    }
}
