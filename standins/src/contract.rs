//! A stand-in of a contract-management tool: contracts sent out for signature, and a
//! `contract.signed` webhook, signed as DocuSign Connect signs, when one is signed.
//!
//! Modelled on the DocuSign eSignature REST API v2.1 and DocuSign Connect, with envelopes
//! renamed to contracts: paths under an account (`/restapi/v2.1/accounts/{accountId}`, see
//! [`API_PATH`]), OAuth bearer tokens, camelCase members with `...DateTime` timestamps, lists
//! paged by `start_position` and `count` whose counters are strings (`"totalSetSize": "12"`)
//! and whose `nextUri` (relative to [`API_PATH`]) is `""` on the last page, and errors as
//! `{"errorCode","message"}`.
//! Unlike DocuSign, which answers `400 ENVELOPE_DOES_NOT_EXIST`, an unknown contract is `404`.
//!
//! Every request needs `Authorization: Bearer {token}` (the token given to
//! [`ContractStandin::start`]). Paths are under [`API_PATH`]:
//!
//! | method and path | answer |
//! | --- | --- |
//! | `POST /contracts` `{"title","signers":[{"name","email"}],"externalReference"?,"value"?,"status"?}` | `201 {"contractId","uri","status","statusDateTime"}`, `created` unless `"status":"sent"` |
//! | `GET /contracts?status=&external_reference=&start_position=&count=` | `200 {"contracts","resultSetSize","startPosition","endPosition","totalSetSize","nextUri"}` |
//! | `GET /contracts/{contractId}` | `200` the contract; `404` |
//! | `PUT /contracts/{contractId}` `{"status":"sent"}` or `{"status":"voided","voidedReason"}` | `200` the contract |
//! | `POST /contracts/{contractId}/sign` | `200` the contract, `completed`; sends the webhook |
//!
//! A contract is `{"contractId","uri","title","externalReference","status","signers",
//! "value","createdDateTime","sentDateTime","completedDateTime","voidedDateTime","voidedReason",
//! "statusChangedDateTime"}`; each signer is `{"recipientId","name","email","status",
//! "signedDateTime"}`. `externalReference` is the caller's: the CRM opportunity or PSA project
//! the contract is about, given back in the webhook so a flow can find what to act on.
//!
//! Lifecycle: `created` -> `sent` -> `completed`; `created` or `sent` -> `voided` (with a
//! `voidedReason`). Signing is the signers' act; `/sign` (or [`ContractStandin::sign`]) plays
//! all of them signing, which completes the contract. Setting the status a contract has changes
//! nothing and sends nothing; another move is `400 INVALID_REQUEST_PARAMETER`.
//!
//! Errors: `400` `INVALID_REQUEST_BODY` (not a JSON object) or `INVALID_REQUEST_PARAMETER` (the
//! message names the member, e.g. `signers[0].email`); `400` `USER_LACKS_MEMBERSHIP` for another
//! account id than [`ACCOUNT_ID`]; `401` `AUTHORIZATION_INVALID_TOKEN`; `404`
//! `CONTRACT_DOES_NOT_EXIST`.
//!
//! # The `contract.signed` webhook
//!
//! After [`ContractStandin::subscribe_webhooks`], each signing is POSTed to the subscriber as
//! DocuSign Connect sends JSON events:
//!
//! ```text
//! POST {url}
//! Content-Type: application/json
//! X-Authorization-Digest: HMACSHA256
//! X-DocuSign-AccountId: <ACCOUNT_ID>
//! X-DocuSign-Signature-1: <base64>
//!
//! {"event":"contract.signed","apiVersion":"v2.1","uri":"/restapi/v2.1/accounts/<ACCOUNT_ID>/contracts/<id>",
//!  "configurationId":"10501","generatedDateTime":"...",
//!  "data":{"accountId":"...","contractId":"...","externalReference":"...","contractSummary":{<the contract>}}}
//! ```
//!
//! `<base64>` is the standard (padded) base64 of the HMAC-SHA256 of the exact body bytes, keyed
//! with the secret given to `subscribe_webhooks` — DocuSign Connect's HMAC scheme, with one key.
//! There is no timestamp: a receiver that must refuse replays keeps the `contractId`s it has
//! acted on. A Junction connection verifies it with
//! `"webhook": {"scheme": {"generic_hmac": {"header": "x-docusign-signature-1", "encoding":
//! "base64"}}, "secret": ...}`.

// Handlers build their answers with `Result<_, Response>`, the error being the response to send.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::server::{
    FaultResponses, FieldError, Lifecycle, StandinCore, Webhooks, behind_authorization,
    hmac_sha256, json_object, lock, only_known_fields, optional_money, optional_text, query_number,
    required_text, rfc3339_millis, standin_handle, standin_webhooks, with_rate_limit_headers,
};

macro_rules! account_id {
    () => {
        "4c9d7a3e-2b1f-4e8a-9d6c-5f0e1a2b3c4d"
    };
}

/// The account every contract belongs to.
pub const ACCOUNT_ID: &str = account_id!();

/// Where the API lives under the base URL: `/restapi/v2.1/accounts/{ACCOUNT_ID}`.
pub const API_PATH: &str = concat!("/restapi/v2.1/accounts/", account_id!());

/// The header carrying a webhook's signature: base64 HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "X-DocuSign-Signature-1";

/// The event sent when a contract is signed.
pub const SIGNED_EVENT: &str = "contract.signed";

/// The hourly request limit advertised in `X-RateLimit-Limit` when the stand-in answers `429`.
pub const RATE_LIMIT: u32 = 3000;

/// The largest `count` of a list.
pub const MAX_PAGE_SIZE: u64 = 1000;

/// The id of the Connect configuration the webhooks come from.
const CONFIGURATION_ID: &str = "10501";

const DEFAULT_PAGE_SIZE: u64 = 100;

const CONTRACTS: Lifecycle = Lifecycle {
    moves: &[
        ("created", "sent"),
        ("created", "voided"),
        ("sent", "completed"),
        ("sent", "voided"),
    ],
};

/// A running contract-tool stand-in on `127.0.0.1`.
///
/// Clones share one server, one store and one webhook subscription. The server stops when the
/// last clone is dropped, or earlier through [`ContractStandin::shutdown`].
#[derive(Clone)]
pub struct ContractStandin {
    core: Arc<StandinCore>,
    state: Arc<ContractState>,
}

standin_handle!(
    ContractStandin,
    "a contract-tool connector (the API is under [`API_PATH`])",
    "The error bodies are `{\"errorCode\",\"message\"}`: `500` `UNSPECIFIED_ERROR`; `429` \
     `HOURLY_APIINVOCATION_LIMIT_EXCEEDED` with `Retry-After` and `X-RateLimit-Limit` \
     ([`RATE_LIMIT`]), `X-RateLimit-Remaining: 0` and `X-RateLimit-Reset` (Unix seconds); \
     `401` `AUTHORIZATION_INVALID_TOKEN`."
);

standin_webhooks!(
    ContractStandin,
    "`contract.signed` events",
    "Each is signed as DocuSign Connect signs: `X-DocuSign-Signature-1: base64(HMAC-SHA256(\
     secret, body))`; see the [module documentation](self)."
);

impl ContractStandin {
    /// Starts on 127.0.0.1 with an ephemeral port; accepts `Authorization: Bearer {token}`.
    ///
    /// Must be called inside a Tokio runtime, which the server task and the webhook worker then
    /// run on.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start(token: &str) -> anyhow::Result<ContractStandin> {
        let token = token.to_owned();
        let webhooks = Webhooks::start("contract")?;
        let (core, state) = StandinCore::start_with_state(
            "contract",
            ContractFaults,
            |_base_url| ContractState {
                token,
                store: Mutex::new(Vec::new()),
                webhooks,
            },
            router,
        )
        .await?;
        Ok(ContractStandin {
            core: Arc::new(core),
            state,
        })
    }

    /// The contracts in creation order, as the API shows them.
    pub fn contracts(&self) -> Vec<Value> {
        lock(&self.state.store)
            .iter()
            .map(Contract::to_json)
            .collect()
    }

    /// Plays every signer of contract `id` signing, as `POST /contracts/{id}/sign` does, and
    /// returns the completed contract.
    ///
    /// # Errors
    ///
    /// When there is no such contract or it is not `sent` (nor already completed).
    pub fn sign(&self, id: &str) -> anyhow::Result<Value> {
        sign_contract(&self.state, id).map_err(|e| anyhow::anyhow!("signing contract {id}: {e}"))
    }
}

struct ContractState {
    token: String,
    store: Mutex<Vec<Contract>>,
    webhooks: Webhooks,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Signer {
    recipient_id: String,
    name: String,
    email: String,
    status: String,
    signed_date_time: Option<String>,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Contract {
    contract_id: String,
    uri: String,
    title: String,
    external_reference: Option<String>,
    status: String,
    signers: Vec<Signer>,
    value: Option<Value>,
    created_date_time: String,
    sent_date_time: Option<String>,
    completed_date_time: Option<String>,
    voided_date_time: Option<String>,
    voided_reason: Option<String>,
    status_changed_date_time: String,
}

impl Contract {
    fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Moves the contract and its signers to `status` at `at`.
    fn set_status(&mut self, status: &str, at: &str) {
        self.status = status.to_owned();
        self.status_changed_date_time = at.to_owned();
        let at = Some(at.to_owned());
        match status {
            "sent" => self.sent_date_time = at,
            "completed" => self.completed_date_time = at,
            "voided" => self.voided_date_time = at,
            _ => {}
        }
        for signer in &mut self.signers {
            signer.status = status.to_owned();
            if status == "completed" {
                signer.signed_date_time = self.completed_date_time.clone();
            }
        }
    }
}

fn now() -> String {
    rfc3339_millis(SystemTime::now())
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "errorCode": code, "message": message })),
    )
        .into_response()
}

fn invalid(e: FieldError) -> Response {
    if e.field.is_empty() {
        error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST_BODY",
            &format!(
                "The request body is missing or improperly formatted. {}",
                e.message
            ),
        )
    } else {
        error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST_PARAMETER",
            &format!(
                "The request contained at least one invalid parameter. {}: {}",
                e.field, e.message
            ),
        )
    }
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "CONTRACT_DOES_NOT_EXIST",
        "The contract specified either does not exist or you have no rights to it.",
    )
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "AUTHORIZATION_INVALID_TOKEN",
        "The access token provided is expired, revoked or malformed.",
    )
}

struct ContractFaults;

impl FaultResponses for ContractFaults {
    fn server_error(&self) -> Response {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNSPECIFIED_ERROR",
            "An unexpected error occurred on the server.",
        )
    }

    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        let response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "HOURLY_APIINVOCATION_LIMIT_EXCEEDED",
            &format!(
                "The maximum number of hourly API invocations has been exceeded. The hourly \
                 limit is {RATE_LIMIT}."
            ),
        );
        with_rate_limit_headers(response, RATE_LIMIT, retry_after_secs)
    }

    fn unauthorized(&self) -> Response {
        unauthorized()
    }
}

fn router(state: Arc<ContractState>) -> Router {
    let api = Router::new()
        .route("/contracts", get(list).post(create))
        .route("/contracts/{id}", get(get_one).put(update))
        .route("/contracts/{id}/sign", post(sign));
    let router = Router::new()
        .nest("/restapi/v2.1/accounts/{account_id}", api)
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(check_account));
    behind_authorization(router, "Bearer", &state.token, unauthorized).with_state(state)
}

/// Refuses paths of another account, as DocuSign does for an account the user is not in.
async fn check_account(request: Request, next: Next) -> Response {
    let account = request
        .uri()
        .path()
        .strip_prefix("/restapi/v2.1/accounts/")
        .and_then(|rest| rest.split('/').next());
    match account {
        Some(account) if account != ACCOUNT_ID => error(
            StatusCode::BAD_REQUEST,
            "USER_LACKS_MEMBERSHIP",
            "The UserID does not have a valid membership in this Account.",
        ),
        _ => next.run(request).await,
    }
}

async fn route_not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "INVALID_REQUEST_PARAMETER",
        "The URL provided does not resolve to a resource.",
    )
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "INVALID_REQUEST_PARAMETER",
        "The method is not allowed on this resource.",
    )
}

fn signers(object: &Map<String, Value>) -> Result<Vec<Signer>, FieldError> {
    let Some(list) = object.get("signers").and_then(Value::as_array) else {
        return Err(FieldError::new(
            "signers",
            "is required: a list of {\"name\", \"email\"}",
        ));
    };
    if list.is_empty() {
        return Err(FieldError::new("signers", "needs at least one signer"));
    }
    list.iter()
        .enumerate()
        .map(|(i, signer)| {
            let field = |name: &str| format!("signers[{i}].{name}");
            let Some(signer) = signer.as_object() else {
                return Err(FieldError::new(
                    &format!("signers[{i}]"),
                    "must be an object",
                ));
            };
            only_known_fields(signer, &["name", "email"])
                .map_err(|e| FieldError::new(&field(&e.field), e.message))?;
            let text = |name: &str| {
                required_text(signer, name).map_err(|e| FieldError::new(&field(name), e.message))
            };
            let (name, email) = (text("name")?, text("email")?);
            if !email.contains('@') {
                return Err(FieldError::new(
                    &field("email"),
                    format!("{email:?} is not an e-mail address"),
                ));
            }
            Ok(Signer {
                recipient_id: (i + 1).to_string(),
                name,
                email,
                status: "created".into(),
                signed_date_time: None,
            })
        })
        .collect()
}

struct ContractInput {
    title: String,
    external_reference: Option<String>,
    signers: Vec<Signer>,
    value: Option<Value>,
    status: String,
}

fn contract_input(body: &Bytes) -> Result<ContractInput, FieldError> {
    let object = json_object(body)?;
    only_known_fields(
        &object,
        &["title", "externalReference", "signers", "value", "status"],
    )?;
    let status = optional_text(&object, "status")?.unwrap_or_else(|| "created".into());
    if status != "created" && status != "sent" {
        return Err(FieldError::new(
            "status",
            format!("a contract is created as created or sent, not {status}"),
        ));
    }
    Ok(ContractInput {
        title: required_text(&object, "title")?,
        external_reference: optional_text(&object, "externalReference")?,
        signers: signers(&object)?,
        value: optional_money(&object, "value")?,
        status,
    })
}

async fn create(State(state): State<Arc<ContractState>>, body: Bytes) -> Response {
    let input = match contract_input(&body) {
        Ok(input) => input,
        Err(e) => return invalid(e),
    };
    let mut store = lock(&state.store);
    let at = now();
    let id = format!("c0a80f7e-1d2b-4c3a-9e8f-{:012x}", store.len() + 1);
    let mut contract = Contract {
        uri: format!("/contracts/{id}"),
        contract_id: id,
        title: input.title,
        external_reference: input.external_reference,
        status: "created".into(),
        signers: input.signers,
        value: input.value,
        created_date_time: at.clone(),
        sent_date_time: None,
        completed_date_time: None,
        voided_date_time: None,
        voided_reason: None,
        status_changed_date_time: at.clone(),
    };
    if input.status == "sent" {
        contract.set_status("sent", &at);
    }
    let summary = json!({
        "contractId": contract.contract_id,
        "uri": contract.uri,
        "status": contract.status,
        "statusDateTime": at,
    });
    store.push(contract);
    (StatusCode::CREATED, axum::Json(summary)).into_response()
}

async fn list(
    State(state): State<Arc<ContractState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let paging = query_number(&query, "start_position", 0).and_then(|start| {
        let count = query_number(&query, "count", 1)?.unwrap_or(DEFAULT_PAGE_SIZE);
        if count > MAX_PAGE_SIZE {
            return Err(FieldError::new(
                "count",
                format!("must be at most {MAX_PAGE_SIZE}"),
            ));
        }
        Ok((start.unwrap_or(0), count))
    });
    let (start, count) = match paging {
        Ok(paging) => paging,
        Err(e) => return invalid(e),
    };
    let store = lock(&state.store);
    let matching: Vec<&Contract> = store
        .iter()
        .filter(|c| query.get("status").is_none_or(|s| *s == c.status))
        .filter(|c| {
            query
                .get("external_reference")
                .is_none_or(|r| Some(r.as_str()) == c.external_reference.as_deref())
        })
        .collect();
    let total = matching.len() as u64;
    let skip = usize::try_from(start).unwrap_or(usize::MAX);
    let take = usize::try_from(count).unwrap_or(usize::MAX);
    let contracts: Vec<Value> = matching
        .iter()
        .skip(skip)
        .take(take)
        .map(|c| c.to_json())
        .collect();
    let size = contracts.len() as u64;
    let next = start + size;
    let mut next_uri = String::new();
    if size > 0 && next < total {
        next_uri = format!("/contracts?start_position={next}&count={count}");
        for name in ["status", "external_reference"] {
            if let Some(value) = query.get(name) {
                next_uri.push_str(&format!("&{name}={}", url_encode(value)));
            }
        }
    }
    axum::Json(json!({
        "contracts": contracts,
        "resultSetSize": size.to_string(),
        "startPosition": start.to_string(),
        "endPosition": (start + size).saturating_sub(1).to_string(),
        "totalSetSize": total.to_string(),
        "nextUri": next_uri,
    }))
    .into_response()
}

/// Percent-encodes everything but the unreserved characters of RFC 3986.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn get_one(
    State(state): State<Arc<ContractState>>,
    Path((_account, id)): Path<(String, String)>,
) -> Response {
    let store = lock(&state.store);
    match store.iter().find(|c| c.contract_id == id) {
        Some(contract) => axum::Json(contract.to_json()).into_response(),
        None => not_found(),
    }
}

fn update_input(body: &Bytes) -> Result<(String, Option<String>), FieldError> {
    let object = json_object(body)?;
    only_known_fields(&object, &["status", "voidedReason"])?;
    let status = required_text(&object, "status")?;
    let reason = optional_text(&object, "voidedReason")?;
    match status.as_str() {
        "sent" if reason.is_some() => Err(FieldError::new(
            "voidedReason",
            "is only for \"status\": \"voided\"",
        )),
        "voided" if reason.is_none() => Err(FieldError::new(
            "voidedReason",
            "is required to void a contract",
        )),
        "sent" | "voided" => Ok((status, reason)),
        "completed" => Err(FieldError::new(
            "status",
            "a contract is completed by its signers signing (POST .../sign), not by PUT",
        )),
        other => Err(FieldError::new(
            "status",
            format!("{other:?} cannot be set; set sent or voided"),
        )),
    }
}

async fn update(
    State(state): State<Arc<ContractState>>,
    Path((_account, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (status, reason) = match update_input(&body) {
        Ok(input) => input,
        Err(e) => return invalid(e),
    };
    let mut store = lock(&state.store);
    let Some(contract) = store.iter_mut().find(|c| c.contract_id == id) else {
        return not_found();
    };
    if let Err(e) = CONTRACTS.check("status", &contract.status, &status) {
        return invalid(e);
    }
    if contract.status != status {
        contract.set_status(&status, &now());
        contract.voided_reason = reason;
    }
    axum::Json(contract.to_json()).into_response()
}

/// Why a contract could not be signed.
enum SignError {
    NotFound,
    Refused(FieldError),
}

impl std::fmt::Display for SignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignError::NotFound => f.write_str("there is no such contract"),
            SignError::Refused(e) => write!(f, "{} {}", e.field, e.message),
        }
    }
}

/// Completes contract `id`; the first signing queues the webhook.
fn sign_contract(state: &ContractState, id: &str) -> Result<Value, SignError> {
    let mut store = lock(&state.store);
    let Some(contract) = store.iter_mut().find(|c| c.contract_id == id) else {
        return Err(SignError::NotFound);
    };
    CONTRACTS
        .check("status", &contract.status, "completed")
        .map_err(SignError::Refused)?;
    if contract.status == "completed" {
        return Ok(contract.to_json());
    }
    let at = now();
    contract.set_status("completed", &at);
    let json = contract.to_json();
    let body = json!({
        "event": SIGNED_EVENT,
        "apiVersion": "v2.1",
        "uri": format!("{API_PATH}/contracts/{id}"),
        "configurationId": CONFIGURATION_ID,
        "generatedDateTime": at,
        "data": {
            "accountId": ACCOUNT_ID,
            "contractId": contract.contract_id,
            "externalReference": contract.external_reference,
            "contractSummary": json,
        },
    });
    state
        .webhooks
        .send(SIGNED_EVENT, body.to_string(), |secret, body| {
            vec![
                ("X-Authorization-Digest", "HMACSHA256".to_owned()),
                ("X-DocuSign-AccountId", ACCOUNT_ID.to_owned()),
                (SIGNATURE_HEADER, signature(secret, body)),
            ]
        });
    Ok(json)
}

/// The `X-DocuSign-Signature-1` value of `body` under `secret`: the base64 HMAC-SHA256.
pub fn signature(secret: &str, body: &[u8]) -> String {
    BASE64.encode(hmac_sha256(secret.as_bytes(), body))
}

async fn sign(
    State(state): State<Arc<ContractState>>,
    Path((_account, id)): Path<(String, String)>,
) -> Response {
    match sign_contract(&state, &id) {
        Ok(json) => axum::Json(json).into_response(),
        Err(SignError::NotFound) => not_found(),
        Err(SignError::Refused(e)) => invalid(e),
    }
}
