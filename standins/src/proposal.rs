//! A stand-in of a proposal tool: proposals that are drafted, sent to the client and accepted,
//! and a signed `proposal.accepted` webhook when one is.
//!
//! Modelled on PandaDoc's public API v1 (documents), renamed to proposals and cut down to what a
//! quote-to-project flow needs: `Authorization: API-Key {key}`, lists as `{"results":[...]}`
//! paged by `page` and `count`, statuses with a dotted prefix (`proposal.draft`), and errors in
//! the Django REST framework shape PandaDoc answers with, `{"type","detail"}`, where `detail` is
//! a message or, for invalid fields, `{"field": ["message"]}`.
//!
//! Every request needs `Authorization: API-Key {key}` (the key given to
//! [`ProposalStandin::start`]). Paths are under [`API_PATH`]:
//!
//! | method and path | answer |
//! | --- | --- |
//! | `POST /proposals` `{"name","recipients":[{"email","first_name"?,"last_name"?}],"grand_total"?,"metadata"?}` | `201` the proposal, `proposal.draft` |
//! | `GET /proposals?status=&page=&count=` | `200 {"results":[...]}`, creation order; a page shorter than `count` is the last |
//! | `GET /proposals/{id}` | `200` the proposal; `404` |
//! | `POST /proposals/{id}/send` | `200` the proposal, `proposal.sent` |
//! | `POST /proposals/{id}/accept` | `200` the proposal, `proposal.accepted`; sends the webhook |
//! | `POST /proposals/{id}/decline` | `200` the proposal, `proposal.declined` |
//!
//! A proposal is `{"id","name","status","recipients","grand_total","metadata","date_created",
//! "date_modified","date_sent","date_accepted"}`. `grand_total` is `{"amount","currency"}` or
//! `null`; `metadata` is an object of strings the caller keeps there, such as the CRM deal id
//! (`{"hubspot_deal_id": "9876543201"}`), returned as given.
//!
//! Lifecycle: `proposal.draft` -> `proposal.sent` -> `proposal.accepted` or `proposal.declined`.
//! Accepting is the client's act; `/accept` (or [`ProposalStandin::accept`]) plays it. Moving a
//! proposal to the status it has changes nothing and sends nothing; another move is `400` with
//! `{"detail":{"status":[...]}}`.
//!
//! # The `proposal.accepted` webhook
//!
//! After [`ProposalStandin::subscribe_webhooks`], each acceptance is POSTed to the subscriber:
//!
//! ```text
//! POST {url}
//! Content-Type: application/json
//! X-Proposal-Event: proposal.accepted
//! X-Proposal-Signature: sha256=<hex>
//!
//! {"event":"proposal.accepted","event_id":"evt_0001","occurred_at":"2024-05-01T09:30:00.123Z","data":{<the proposal>}}
//! ```
//!
//! `<hex>` is the lower-case hex HMAC-SHA256 of the exact body bytes, keyed with the shared
//! secret given to `subscribe_webhooks` — as GitHub signs (`X-Hub-Signature-256`). There is no
//! timestamp: a receiver that must refuse replays keeps the `event_id`s it has seen. (PandaDoc
//! itself sends the same HMAC as a `signature` query parameter; a header is what webhook
//! verifiers generally read.) A Junction connection verifies it with
//! `"webhook": {"scheme": {"generic_hmac": {"header": "x-proposal-signature", "prefix":
//! "sha256=", "encoding": "hex"}}, "secret": ...}`.

// Handlers build their answers with `Result<_, Response>`, the error being the response to send.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::server::{
    FaultResponses, FieldError, Lifecycle, StandinCore, Webhooks, behind_authorization,
    hmac_sha256, json_object, lock, only_known_fields, optional_money, optional_text, query_number,
    required_text, rfc3339_millis, standin_handle, standin_webhooks,
};

/// Where the API lives under the base URL.
pub const API_PATH: &str = "/public/v1";

/// The header carrying a webhook's signature, `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Proposal-Signature";

/// The header naming a webhook's event.
pub const EVENT_HEADER: &str = "X-Proposal-Event";

/// The event sent when a proposal is accepted.
pub const ACCEPTED_EVENT: &str = "proposal.accepted";

/// The largest `count` of a list.
pub const MAX_PAGE_SIZE: u64 = 100;

const DEFAULT_PAGE_SIZE: u64 = 50;

const PROPOSALS: Lifecycle = Lifecycle {
    moves: &[
        ("proposal.draft", "proposal.sent"),
        ("proposal.sent", "proposal.accepted"),
        ("proposal.sent", "proposal.declined"),
    ],
};

/// A running proposal-tool stand-in on `127.0.0.1`.
///
/// Clones share one server, one store and one webhook subscription. The server stops when the
/// last clone is dropped, or earlier through [`ProposalStandin::shutdown`].
#[derive(Clone)]
pub struct ProposalStandin {
    core: Arc<StandinCore>,
    state: Arc<ProposalState>,
}

standin_handle!(
    ProposalStandin,
    "a proposal-tool connector (the API is under [`API_PATH`])",
    "The error bodies are `{\"type\",\"detail\"}`: `500` type `server_error`; `429` type \
     `request_error` with `Retry-After` and the detail `Request was throttled. Expected \
     available in N seconds.`; `401` type `authentication_error`."
);

standin_webhooks!(
    ProposalStandin,
    "`proposal.accepted` events",
    "Each is signed with `X-Proposal-Signature: sha256=<hex HMAC-SHA256(secret, body)>`; see \
     the [module documentation](self)."
);

impl ProposalStandin {
    /// Starts on 127.0.0.1 with an ephemeral port; accepts `Authorization: API-Key {api_key}`.
    ///
    /// Must be called inside a Tokio runtime, which the server task and the webhook worker then
    /// run on.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start(api_key: &str) -> anyhow::Result<ProposalStandin> {
        let api_key = api_key.to_owned();
        let webhooks = Webhooks::start("proposal")?;
        let (core, state) = StandinCore::start_with_state(
            "proposal",
            ProposalFaults,
            |_base_url| ProposalState {
                api_key,
                store: Mutex::new(Store::default()),
                webhooks,
            },
            router,
        )
        .await?;
        Ok(ProposalStandin {
            core: Arc::new(core),
            state,
        })
    }

    /// The proposals in creation order, as the API shows them.
    pub fn proposals(&self) -> Vec<Value> {
        let store = lock(&self.state.store);
        store.proposals.iter().map(Proposal::to_json).collect()
    }

    /// Plays the client accepting proposal `id`, as `POST /proposals/{id}/accept` does, and
    /// returns it.
    ///
    /// # Errors
    ///
    /// When there is no such proposal or it is not `proposal.sent` (nor already accepted).
    pub fn accept(&self, id: &str) -> anyhow::Result<Value> {
        move_to(&self.state, id, "proposal.accepted")
            .map_err(|e| anyhow::anyhow!("accepting proposal {id}: {}", e.describe()))
    }
}

struct ProposalState {
    api_key: String,
    store: Mutex<Store>,
    webhooks: Webhooks,
}

#[derive(Default)]
struct Store {
    proposals: Vec<Proposal>,
    events: u64,
}

#[derive(Clone, Serialize)]
struct Recipient {
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
}

#[derive(Clone, Serialize)]
struct Proposal {
    id: String,
    name: String,
    status: String,
    recipients: Vec<Recipient>,
    grand_total: Option<Value>,
    metadata: Map<String, Value>,
    date_created: String,
    date_modified: String,
    date_sent: Option<String>,
    date_accepted: Option<String>,
}

impl Proposal {
    fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

fn now() -> String {
    rfc3339_millis(SystemTime::now())
}

fn error(status: StatusCode, kind: &str, detail: Value) -> Response {
    (
        status,
        axum::Json(json!({ "type": kind, "detail": detail })),
    )
        .into_response()
}

/// `400` with the field's messages, or the message alone for the body as a whole.
fn invalid(e: FieldError) -> Response {
    let detail = if e.field.is_empty() {
        json!(e.message)
    } else {
        json!({ e.field: [e.message] })
    };
    error(StatusCode::BAD_REQUEST, "request_error", detail)
}

/// A failed move: the proposal is missing, or the move is not allowed.
enum MoveError {
    NotFound,
    Refused(FieldError),
}

impl MoveError {
    fn into_response(self) -> Response {
        match self {
            MoveError::NotFound => not_found(),
            MoveError::Refused(e) => invalid(e),
        }
    }

    fn describe(&self) -> String {
        match self {
            MoveError::NotFound => "there is no such proposal".into(),
            MoveError::Refused(e) => format!("{} {}", e.field, e.message),
        }
    }
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "request_error", json!("Not found."))
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        json!("Authentication credentials were not provided or are invalid."),
    )
}

struct ProposalFaults;

impl FaultResponses for ProposalFaults {
    fn server_error(&self) -> Response {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            json!("A server error occurred."),
        )
    }

    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "request_error",
            json!(format!(
                "Request was throttled. Expected available in {retry_after_secs} seconds."
            )),
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

fn router(state: Arc<ProposalState>) -> Router {
    let api = Router::new()
        .route("/proposals", get(list).post(create))
        .route("/proposals/{id}", get(get_one))
        .route("/proposals/{id}/send", post(send))
        .route("/proposals/{id}/accept", post(accept))
        .route("/proposals/{id}/decline", post(decline));
    let router = Router::new()
        .nest(API_PATH, api)
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed);
    behind_authorization(router, "API-Key", &state.api_key, unauthorized).with_state(state)
}

async fn route_not_found() -> Response {
    not_found()
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "request_error",
        json!("Method not allowed."),
    )
}

fn recipients(object: &Map<String, Value>) -> Result<Vec<Recipient>, FieldError> {
    let Some(list) = object.get("recipients").and_then(Value::as_array) else {
        return Err(FieldError::new(
            "recipients",
            "is required: a list of {\"email\", \"first_name\", \"last_name\"}",
        ));
    };
    if list.is_empty() {
        return Err(FieldError::new(
            "recipients",
            "needs at least one recipient",
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, recipient)| {
            let field = |name: &str| format!("recipients[{i}].{name}");
            let Some(recipient) = recipient.as_object() else {
                return Err(FieldError::new(
                    &format!("recipients[{i}]"),
                    "must be an object",
                ));
            };
            let known = ["email", "first_name", "last_name"];
            only_known_fields(recipient, &known)
                .map_err(|e| FieldError::new(&field(&e.field), e.message))?;
            let email = required_text(recipient, "email")
                .map_err(|e| FieldError::new(&field("email"), e.message))?;
            if !email.contains('@') {
                return Err(FieldError::new(
                    &field("email"),
                    format!("{email:?} is not an e-mail address"),
                ));
            }
            let text = |name: &str| {
                optional_text(recipient, name).map_err(|e| FieldError::new(&field(name), e.message))
            };
            Ok(Recipient {
                email,
                first_name: text("first_name")?,
                last_name: text("last_name")?,
            })
        })
        .collect()
}

fn metadata(object: &Map<String, Value>) -> Result<Map<String, Value>, FieldError> {
    match object.get("metadata") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => match map.iter().find(|(_, v)| !v.is_string()) {
            Some((key, _)) => Err(FieldError::new(
                &format!("metadata.{key}"),
                "must be a string",
            )),
            None => Ok(map.clone()),
        },
        Some(_) => Err(FieldError::new("metadata", "must be an object of strings")),
    }
}

/// A draft proposal from a create request; its id is given when it is stored.
fn new_proposal(body: &Bytes) -> Result<Proposal, FieldError> {
    let object = json_object(body)?;
    only_known_fields(&object, &["name", "recipients", "grand_total", "metadata"])?;
    let created = now();
    Ok(Proposal {
        id: String::new(),
        name: required_text(&object, "name")?,
        status: "proposal.draft".into(),
        recipients: recipients(&object)?,
        grand_total: optional_money(&object, "grand_total")?,
        metadata: metadata(&object)?,
        date_created: created.clone(),
        date_modified: created,
        date_sent: None,
        date_accepted: None,
    })
}

async fn create(State(state): State<Arc<ProposalState>>, body: Bytes) -> Response {
    let mut proposal = match new_proposal(&body) {
        Ok(proposal) => proposal,
        Err(e) => return invalid(e),
    };
    let mut store = lock(&state.store);
    proposal.id = format!("prop_{:04}", store.proposals.len() + 1);
    let json = proposal.to_json();
    store.proposals.push(proposal);
    (StatusCode::CREATED, axum::Json(json)).into_response()
}

async fn list(
    State(state): State<Arc<ProposalState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let paging = query_number(&query, "page", 1).and_then(|page| {
        let count = query_number(&query, "count", 1)?.unwrap_or(DEFAULT_PAGE_SIZE);
        if count > MAX_PAGE_SIZE {
            return Err(FieldError::new(
                "count",
                format!("must be at most {MAX_PAGE_SIZE}"),
            ));
        }
        Ok((page.unwrap_or(1), count))
    });
    let (page, count) = match paging {
        Ok(paging) => paging,
        Err(e) => return invalid(e),
    };
    let status = query.get("status");
    let skip = usize::try_from((page - 1).saturating_mul(count)).unwrap_or(usize::MAX);
    let take = usize::try_from(count).unwrap_or(usize::MAX);
    let store = lock(&state.store);
    let results: Vec<Value> = store
        .proposals
        .iter()
        .filter(|p| status.is_none_or(|s| *s == p.status))
        .skip(skip)
        .take(take)
        .map(Proposal::to_json)
        .collect();
    axum::Json(json!({ "results": results })).into_response()
}

async fn get_one(State(state): State<Arc<ProposalState>>, Path(id): Path<String>) -> Response {
    let store = lock(&state.store);
    match store.proposals.iter().find(|p| p.id == id) {
        Some(proposal) => axum::Json(proposal.to_json()).into_response(),
        None => not_found(),
    }
}

/// Moves proposal `id` to `status`; a first acceptance queues the webhook.
fn move_to(state: &ProposalState, id: &str, status: &str) -> Result<Value, MoveError> {
    let mut store = lock(&state.store);
    let Some(index) = store.proposals.iter().position(|p| p.id == id) else {
        return Err(MoveError::NotFound);
    };
    let proposal = &store.proposals[index];
    PROPOSALS
        .check("status", &proposal.status, status)
        .map_err(MoveError::Refused)?;
    if proposal.status == status {
        return Ok(proposal.to_json());
    }
    let at = now();
    let proposal = &mut store.proposals[index];
    proposal.status = status.to_owned();
    proposal.date_modified = at.clone();
    match status {
        "proposal.sent" => proposal.date_sent = Some(at.clone()),
        "proposal.accepted" => proposal.date_accepted = Some(at.clone()),
        _ => {}
    }
    let json = proposal.to_json();
    if status == ACCEPTED_EVENT {
        store.events += 1;
        let body = json!({
            "event": ACCEPTED_EVENT,
            "event_id": format!("evt_{:04}", store.events),
            "occurred_at": at,
            "data": json,
        });
        state
            .webhooks
            .send(ACCEPTED_EVENT, body.to_string(), |secret, body| {
                vec![
                    (EVENT_HEADER, ACCEPTED_EVENT.to_owned()),
                    (SIGNATURE_HEADER, signature(secret, body)),
                ]
            });
    }
    Ok(json)
}

/// The `X-Proposal-Signature` value of `body` under `secret`: `sha256=` and the lower-case hex
/// HMAC-SHA256.
pub fn signature(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), body))
    )
}

fn answer_move(state: &ProposalState, id: &str, status: &str) -> Response {
    match move_to(state, id, status) {
        Ok(json) => axum::Json(json).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn send(State(state): State<Arc<ProposalState>>, Path(id): Path<String>) -> Response {
    answer_move(&state, &id, "proposal.sent")
}

async fn accept(State(state): State<Arc<ProposalState>>, Path(id): Path<String>) -> Response {
    answer_move(&state, &id, "proposal.accepted")
}

async fn decline(State(state): State<Arc<ProposalState>>, Path(id): Path<String>) -> Response {
    answer_move(&state, &id, "proposal.declined")
}
