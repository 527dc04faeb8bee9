//! Contract-tool connector: contracts sent for signature over a
//! DocuSign-style REST API (`/restapi/v2.1/accounts/{accountId}/contracts`),
//! and the tool's signed `contract.signed` webhooks as events.
//!
//! Connection settings: `base_url` (e.g. `https://demo.docusign.net`),
//! `account_id` (the account the contracts belong to) and `page_size`
//! (contracts per page of a stream, 1 to 1000, 100 by default). The host adds
//! the access token; this plugin never sees it.
//!
//! Contracts are the tool's own camelCase shape: `{"contractId", "title",
//! "externalReference", "status" (created, sent, completed, voided),
//! "signers", "value", "...DateTime"}`. `externalReference` is the caller's,
//! e.g. the PSA project's external id, and comes back in the webhook. The
//! tool honours no idempotency key, so `create-contract` is not declared
//! idempotent; `void-contract` undoes it in a saga (it takes a
//! `contractId`, or the `{input, output}` a compensation is fed).
//!
//! Stream (`read`, and the `read` operation): `contracts`, every contract in
//! creation order; the cursor is the next `start_position`.
//!
//! Webhooks: the host checks `X-DocuSign-Signature-1` (the base64
//! HMAC-SHA256 of the body: the connection's webhook scheme is
//! `{"generic_hmac": {"header": "x-docusign-signature-1", "encoding":
//! "base64"}}`). A `contract.signed` delivery becomes one event of that type:
//! id `{contractId}:signed` (a contract is signed once, so redeliveries are
//! one event), source `contract/{accountId}`, subject the contract id, time
//! `generatedDateTime`, and data `{"contractId", "externalReference",
//! "accountId", "title", "contract"}`. Other events are ignored.
//!
//! Errors: `{"errorCode", "message"}` bodies map to invalid input (400, the
//! message names the member), unauthorized (401, 403, and
//! `USER_LACKS_MEMBERSHIP` for an `account_id` the credentials are not in),
//! not found (404), conflict (409), rate limited (429, after `Retry-After`)
//! and unavailable (5xx).

use junction_sdk::canonical::Money;
use junction_sdk::http::{Request, Response, encode_component};
use junction_sdk::{
    Connector, Context, Error, Event, JsonSchema, Operation, Operations, Page, Result, Trigger,
    WebhookRequest, rest,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

struct ContractTool;

impl Connector for ContractTool {
    fn operations() -> Operations {
        Operations::new()
            .with(
                Operation::new(
                    "create-contract",
                    "Creates a contract, to be signed once sent",
                    create_contract,
                )
                .undo("void-contract"),
            )
            .with(
                Operation::new("get-contract", "Reads a contract by id", get_contract).idempotent(),
            )
            .with(
                Operation::new(
                    "void-contract",
                    "Voids a contract not yet signed (the compensation of create-contract)",
                    void_contract,
                )
                .idempotent(),
            )
            .with(Operation::read::<ContractTool>())
    }

    fn check(ctx: &Context) -> Result<()> {
        send(Request::get(url(ctx, "/contracts?count=1")?)).map(drop)
    }

    fn read(ctx: &Context, stream: &str, cursor: Option<String>) -> Result<Page> {
        if stream != CONTRACTS {
            return Err(rest::unknown_stream(stream, &[CONTRACTS]));
        }
        let start: u64 = match cursor.as_deref() {
            None => 0,
            Some(text) => text.parse().map_err(|_| {
                Error::InvalidInput(format!(
                    "cursor `{text}` of stream `{CONTRACTS}` is not one this connector returned"
                ))
            })?,
        };
        let path = format!(
            "/contracts?start_position={start}&count={}",
            rest::page_size(ctx, 100, MAX_PAGE_SIZE)?
        );
        let listed: Listed = send(Request::get(url(ctx, &path)?))?.json()?;
        let count = listed.contracts.len() as u64;
        let more = !listed.next_uri.is_empty() && count > 0;
        let next = more.then(|| (start + count).to_string());
        Page::from_records(&listed.contracts, next, !more)
    }

    fn handle_webhook(_: &Context, request: WebhookRequest) -> Result<Vec<Event>> {
        let delivery: Delivery = request.json().map_err(|e| {
            Error::InvalidInput(format!(
                "a contract-tool webhook body is {{\"event\", \"generatedDateTime\", \"data\": \
                 {{\"accountId\", \"contractId\", ...}}}}: {e}"
            ))
        })?;
        if delivery.event != SIGNED {
            junction_sdk::log::info(format!(
                "ignoring contract-tool event `{}` ({})",
                delivery.event, delivery.data.contract_id
            ));
            return Ok(Vec::new());
        }
        Ok(vec![signed_event(delivery)?])
    }

    fn triggers() -> Vec<Trigger> {
        vec![Trigger {
            event_type: SIGNED.into(),
            description: "Every signer signed a contract".into(),
            schema: junction_sdk::schema_of::<SignedData>(),
        }]
    }

    fn config_schema() -> String {
        junction_sdk::schema_of::<Config>()
    }
}

junction_sdk::export_connector!(ContractTool, name = "contract");

/// Settings of a contract-tool connection.
#[derive(JsonSchema)]
// Only its schema is used: settings are read one by one through the context.
#[allow(dead_code)]
struct Config {
    /// The account's API host, e.g. `https://demo.docusign.net`.
    base_url: String,
    /// The account the contracts belong to.
    account_id: String,
    /// Contracts per page of a stream, 1 to 1000; 100 by default.
    page_size: Option<String>,
}

const CONTRACTS: &str = "contracts";
const SIGNED: &str = "contract.signed";
/// The largest page the tool serves.
const MAX_PAGE_SIZE: u32 = 1000;

fn url(ctx: &Context, path: &str) -> Result<String> {
    let base = ctx.require_config("base_url")?;
    let account = ctx.require_config("account_id")?;
    if account.trim().is_empty() {
        return Err(Error::InvalidInput(format!(
            "connection `{}` has an empty `account_id`",
            ctx.connection
        )));
    }
    Ok(format!(
        "{}/restapi/v2.1/accounts/{}{path}",
        base.trim_end_matches('/'),
        encode_component(account.trim())
    ))
}

/// Sends `request` and passes a 2xx response through; every other status
/// becomes the error case the tool's answer says.
fn send(request: Request) -> Result<Response> {
    let response = request.header("accept", "application/json").send()?;
    if response.is_success() {
        return Ok(response);
    }
    Err(failure(response))
}

/// The tool's error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(rename = "errorCode")]
    code: String,
    #[serde(default)]
    message: String,
}

/// The error case of a failed request: the status decides the case, the
/// tool's body the message.
fn failure(response: Response) -> Error {
    let Ok(body) = serde_json::from_slice::<ErrorBody>(&response.body) else {
        return rest::refusal(&response, &response.text());
    };
    if body.code == "USER_LACKS_MEMBERSHIP" {
        return Error::Unauthorized(format!(
            "the credentials are not a member of the connection's `account_id` \
             (USER_LACKS_MEMBERSHIP): {}",
            body.message
        ));
    }
    let message = format!(
        "the contract tool refused the request ({}): {}",
        body.code, body.message
    );
    rest::refusal(&response, &message)
}

/// Someone who signs a contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewSigner {
    /// Full name.
    name: String,
    /// E-mail address.
    email: String,
}

/// A signer as the tool returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Signer {
    /// Position among the signers, from `1`.
    recipient_id: String,
    /// Full name.
    name: String,
    /// E-mail address.
    email: String,
    /// The contract's status as this signer sees it.
    status: String,
    /// RFC 3339, once signed.
    signed_date_time: Option<String>,
}

/// A contract as the tool returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Contract {
    /// The tool's id, a UUID.
    contract_id: String,
    /// Its path under the account.
    uri: String,
    /// Title.
    title: String,
    /// The caller's reference, e.g. the PSA project's external id.
    external_reference: Option<String>,
    /// `created`, `sent`, `completed` or `voided`.
    status: String,
    /// Who signs.
    signers: Vec<Signer>,
    /// The contract's value.
    value: Option<Money>,
    /// RFC 3339.
    created_date_time: String,
    /// RFC 3339, once sent.
    sent_date_time: Option<String>,
    /// RFC 3339, once every signer signed.
    completed_date_time: Option<String>,
    /// RFC 3339, once voided.
    voided_date_time: Option<String>,
    /// Why it was voided.
    voided_reason: Option<String>,
    /// RFC 3339.
    status_changed_date_time: String,
}

/// Input of `create-contract`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateContract {
    /// Title, e.g. `Acme rollout: master services agreement`.
    title: String,
    /// Who signs; at least one.
    signers: Vec<NewSigner>,
    /// The caller's reference, given back in the `contract.signed` event,
    /// e.g. the PSA project's external id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    external_reference: Option<String>,
    /// The contract's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<Money>,
    /// `sent` to send it for signature at once; `created` (a draft) by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<NewStatus>,
}

/// The status a contract is created with.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum NewStatus {
    /// A draft.
    Created,
    /// Sent for signature.
    Sent,
}

/// What the tool answers to a create.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Created {
    /// The new contract's id.
    contract_id: String,
    /// Its path under the account.
    uri: String,
    /// `created` or `sent`.
    status: String,
    /// RFC 3339.
    status_date_time: String,
}

fn create_contract(ctx: &Context, input: CreateContract) -> Result<Created> {
    if input.title.trim().is_empty() {
        return Err(Error::InvalidInput("`title` must not be empty".into()));
    }
    if input.signers.is_empty() {
        return Err(Error::InvalidInput(
            "`signers` must name at least one person to sign".into(),
        ));
    }
    send(Request::post(url(ctx, "/contracts")?).json(&input)?)?.json()
}

fn contract_url(ctx: &Context, id: &str) -> Result<String> {
    if id.trim().is_empty() {
        return Err(Error::InvalidInput("`contractId` must not be empty".into()));
    }
    url(ctx, &format!("/contracts/{}", encode_component(id.trim())))
}

/// Input of `get-contract`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GetContract {
    /// The tool's id.
    contract_id: String,
}

fn get_contract(ctx: &Context, input: GetContract) -> Result<Contract> {
    send(Request::get(contract_url(ctx, &input.contract_id)?))?.json()
}

/// The `contractId` a create returned.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct CreatedId {
    /// The contract's id.
    contract_id: String,
}

/// Input of `void-contract`: `contractId`, or, as a saga compensation, the
/// `{input, output}` of the step that created it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VoidContract {
    /// The tool's id.
    #[serde(default)]
    contract_id: Option<String>,
    /// Why; `withdrawn` by default.
    #[serde(default)]
    voided_reason: Option<String>,
    /// As a compensation: what `create-contract` returned.
    #[serde(default)]
    output: Option<CreatedId>,
    /// As a compensation: the input of that step (not used).
    #[serde(default)]
    #[allow(dead_code)]
    input: Option<Value>,
}

fn void_contract(ctx: &Context, input: VoidContract) -> Result<Contract> {
    let id = match (input.contract_id, input.output) {
        (Some(id), _) => id,
        (None, Some(output)) => output.contract_id,
        (None, None) => {
            return Err(Error::InvalidInput(
                "give the `contractId` (or a compensation's `output`)".into(),
            ));
        }
    };
    let reason = input
        .voided_reason
        .unwrap_or_else(|| "withdrawn".to_owned());
    let body = json!({ "status": "voided", "voidedReason": reason });
    send(Request::put(contract_url(ctx, &id)?).json(&body)?)?.json()
}

/// A page of `GET /contracts`.
#[derive(Debug, Deserialize)]
struct Listed {
    contracts: Vec<Contract>,
    #[serde(rename = "nextUri", default)]
    next_uri: String,
}

/// A DocuSign Connect-style delivery.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delivery {
    event: String,
    generated_date_time: String,
    data: DeliveryData,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryData {
    account_id: String,
    contract_id: String,
    #[serde(default)]
    external_reference: Option<String>,
    #[serde(default)]
    contract_summary: Value,
}

/// The data of a `contract.signed` event.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct SignedData {
    /// The contract's id.
    contract_id: String,
    /// The caller's reference given at creation, e.g. the PSA project's
    /// external id; `null` when none was given.
    external_reference: Option<String>,
    /// The account.
    account_id: String,
    /// The contract's title, when the delivery carries it.
    title: Option<String>,
    /// The contract as the tool sent it.
    contract: Value,
}

fn signed_event(delivery: Delivery) -> Result<Event> {
    let data = delivery.data;
    if data.contract_id.trim().is_empty() {
        return Err(Error::InvalidInput(
            "a contract.signed delivery needs `data.contractId`".into(),
        ));
    }
    let signed = SignedData {
        title: data
            .contract_summary
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_owned),
        contract_id: data.contract_id.clone(),
        external_reference: data.external_reference,
        account_id: data.account_id.clone(),
        contract: data.contract_summary,
    };
    Ok(Event {
        id: format!("{}:signed", data.contract_id),
        event_type: SIGNED.into(),
        source: format!("contract/{}", data.account_id),
        subject: Some(data.contract_id),
        time: delivery.generated_date_time,
        data: json!(signed).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "4c9d7a3e-2b1f-4e8a-9d6c-5f0e1a2b3c4d";
    const ID: &str = "c0a80f7e-1d2b-4c3a-9e8f-000000000001";

    fn delivery(event: &str, external_reference: Value) -> WebhookRequest {
        let body = json!({
            "event": event, "apiVersion": "v2.1",
            "uri": format!("/restapi/v2.1/accounts/{ACCOUNT}/contracts/{ID}"),
            "configurationId": "10501", "generatedDateTime": "2026-11-04T08:00:00.000Z",
            "data": {"accountId": ACCOUNT, "contractId": ID, "externalReference": external_reference,
                     "contractSummary": {"contractId": ID, "title": "Acme MSA", "status": "completed"}}
        });
        WebhookRequest {
            method: "POST".into(),
            path: "/v1/webhooks/contract".into(),
            headers: vec![("x-docusign-accountid".into(), ACCOUNT.into())],
            body: body.to_string().into_bytes(),
        }
    }

    #[test]
    fn a_signed_contract_becomes_one_event_carrying_its_reference() {
        let events =
            ContractTool::handle_webhook(&Context::default(), delivery(SIGNED, json!("crm-42")))
                .unwrap();
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.id, format!("{ID}:signed"));
        assert_eq!(event.event_type, "contract.signed");
        assert_eq!(event.source, format!("contract/{ACCOUNT}"));
        assert_eq!(event.subject.as_deref(), Some(ID));
        assert_eq!(event.time, "2026-11-04T08:00:00.000Z");
        let data: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(data["contractId"], ID);
        assert_eq!(data["externalReference"], "crm-42");
        assert_eq!(data["title"], "Acme MSA");
        assert_eq!(data["contract"]["status"], "completed");
    }

    #[test]
    fn a_contract_without_reference_still_signs_and_other_events_are_ignored() {
        let events =
            ContractTool::handle_webhook(&Context::default(), delivery(SIGNED, Value::Null))
                .unwrap();
        let data: Value = serde_json::from_str(&events[0].data).unwrap();
        assert_eq!(data["externalReference"], Value::Null);
        assert_eq!(
            ContractTool::handle_webhook(
                &Context::default(),
                delivery("contract.sent", json!("x"))
            ),
            Ok(vec![])
        );
        let broken = WebhookRequest {
            body: br#"{"event":"contract.signed"}"#.to_vec(),
            ..WebhookRequest::default()
        };
        assert!(matches!(
            ContractTool::handle_webhook(&Context::default(), broken),
            Err(Error::InvalidInput(m)) if m.contains("generatedDateTime")
        ));
    }

    fn response(status: u16, headers: &[(&str, &str)], code: &str, message: &str) -> Response {
        let body = json!({"errorCode": code, "message": message});
        Response::new(status, headers, body.to_string())
    }

    #[test]
    fn error_codes_map_to_cases() {
        let invalid = failure(response(
            400,
            &[],
            "INVALID_REQUEST_PARAMETER",
            "The request contained at least one invalid parameter. signers[0].email: is required",
        ));
        assert!(
            matches!(&invalid, Error::InvalidInput(m) if m.contains("signers[0].email")),
            "{invalid:?}"
        );
        assert!(matches!(
            failure(response(400, &[], "USER_LACKS_MEMBERSHIP", "not in account")),
            Error::Unauthorized(m) if m.contains("account_id")
        ));
        assert!(matches!(
            failure(response(401, &[], "AUTHORIZATION_INVALID_TOKEN", "expired")),
            Error::Unauthorized(m) if m.contains("AUTHORIZATION_INVALID_TOKEN")
        ));
        assert!(matches!(
            failure(response(404, &[], "CONTRACT_DOES_NOT_EXIST", "gone")),
            Error::NotFound(_)
        ));
        assert!(matches!(
            failure(response(503, &[], "UNSPECIFIED_ERROR", "down")),
            Error::Unavailable(_)
        ));
        assert_eq!(
            failure(response(
                429,
                &[("Retry-After", "3")],
                "HOURLY_APIINVOCATION_LIMIT_EXCEEDED",
                "slow down"
            )),
            Error::RateLimited {
                retry_after_ms: 3000
            }
        );
    }

    #[test]
    fn creates_send_camel_case_and_only_what_was_given() {
        let input: CreateContract = serde_json::from_value(json!({
            "title": "MSA", "signers": [{"name": "Ann", "email": "ann@acme.example"}],
            "externalReference": "crm-42", "status": "sent"
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&input).unwrap(),
            json!({"title": "MSA", "signers": [{"name": "Ann", "email": "ann@acme.example"}],
                   "externalReference": "crm-42", "status": "sent"})
        );
        assert!(
            serde_json::from_value::<CreateContract>(
                json!({"title": "MSA", "signers": [], "status": "completed"})
            )
            .is_err()
        );
    }

    #[test]
    fn operations_match_the_manifest() {
        let manifest = include_str!("../plugin.toml");
        let names: Vec<String> = ContractTool::operations()
            .names()
            .map(|n| format!("\"{n}\""))
            .collect();
        assert!(
            manifest.contains(&format!("operations = [{}]", names.join(", "))),
            "{names:?}"
        );
    }
}
