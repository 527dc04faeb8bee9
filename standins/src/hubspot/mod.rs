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
//! Reads (get, list, search, batch read) return the properties they name — `?properties=a,b` or
//! `?properties=a&properties=b`, as HubSpot's clients send them — `null` where unset; without
//! any, HubSpot's default set of the object type, as the real API does (a deal's `amount`,
//! `closedate`, `dealname`, `dealstage`, `pipeline`, not its `deal_currency_code`; a
//! company's `domain` and `name`, not its `country`), besides `hs_object_id`, `createdate` and
//! `hs_lastmodifieddate`. Creates and updates answer every property the object has.
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

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use crate::server::{StandinCore, has_bearer_token, lock, standin_handle};

mod batch;
mod errors;
mod objects;
mod search;
mod webhooks;
use batch::{batch_create, batch_read};
use errors::{HubspotFaults, hubspot_error, unauthorized};
use objects::{create, get_object, list, update};
use search::search;
pub use webhooks::{
    WebhookDelivery, property_change_event, sign_v3, webhook_delivery, webhook_delivery_at,
};

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

standin_handle!(
    HubspotStandin,
    "a HubSpot connector",
    "The error bodies are HubSpot's: `500` category `INTERNAL_ERROR`; `429` category `RATE_LIMITS` (`\"errorType\":\"RATE_LIMIT\"`, `\"policyName\":\"TEN_SECONDLY_ROLLING\"`) with `Retry-After` and the `X-HubSpot-RateLimit-*` headers (`-Max` [`RATE_LIMIT_MAX`], `-Remaining: 0`, `-Interval-Milliseconds: 10000`, `-Daily` [`RATE_LIMIT_DAILY`], `-Daily-Remaining`); `401` category `INVALID_AUTHENTICATION`."
);

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
    /// What a read that names no properties returns, as HubSpot documents for v3 objects.
    fn default_properties(self) -> &'static [&'static str] {
        match self {
            ObjectType::Deals => &[
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ],
            ObjectType::Companies => &[
                "createdate",
                "domain",
                "hs_lastmodifieddate",
                "hs_object_id",
                "name",
            ],
        }
    }

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
    /// What a read answers: the properties it `named`, else the type's default set.
    fn read_json(&self, named: Option<&[String]>) -> Value {
        match named {
            Some(names) => self.to_json(Some(names)),
            None => {
                let defaults: Vec<String> = self
                    .kind
                    .default_properties()
                    .iter()
                    .map(|p| (*p).to_string())
                    .collect();
                self.to_json(Some(&defaults))
            }
        }
    }

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
