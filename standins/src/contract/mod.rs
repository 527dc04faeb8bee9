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

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;

use crate::server::{
    Lifecycle, StandinCore, Webhooks, behind_authorization, lock, rfc3339_millis, standin_handle,
    standin_webhooks,
};

mod contracts;
mod errors;
mod signing;
use contracts::{create, get_one, list, update};
use errors::{ContractFaults, error, unauthorized};
pub use signing::signature;
use signing::{sign, sign_contract};

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
