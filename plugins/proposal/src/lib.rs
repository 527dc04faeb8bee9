//! Proposal-tool connector: proposals over a PandaDoc-style REST API
//! (`/public/v1/proposals`), and the tool's signed `proposal.accepted`
//! webhooks as events.
//!
//! Connection settings: `base_url` (`https://api.pandadoc.com` by default)
//! and `page_size` (proposals per page of a stream, 1 to 100, 50 by
//! default). The connection's credentials are an API key the host sends as
//! `Authorization: API-Key {key}`; this plugin never sees it.
//!
//! Proposals are the tool's own shape: `{"id", "name", "status"
//! ("proposal.draft", "proposal.sent", ...), "recipients", "grand_total",
//! "metadata", "date_created", "date_modified", "date_sent",
//! "date_accepted"}`; `metadata` holds the caller's strings, such as the CRM
//! deal id. The tool honours no idempotency key, so `create-proposal` is not
//! declared idempotent: a retried create can make a second draft.
//!
//! Stream (`read`, and the `read` operation): `proposals`, every proposal in
//! creation order; the cursor is the next page.
//!
//! Webhooks: the host checks `X-Proposal-Signature` (`sha256=` and the hex
//! HMAC-SHA256 of the body: the connection's webhook scheme is
//! `{"generic_hmac": {"header": "x-proposal-signature", "prefix": "sha256=",
//! "encoding": "hex"}}`). A `proposal.accepted` delivery becomes one event of
//! that type: id the delivery's `event_id`, source `proposal/{connection}`,
//! subject the proposal id, time `occurred_at`, and data `{"proposalId",
//! "name", "metadata", "grandTotal", "proposal"}`. Other events are ignored.
//!
//! Errors: `{"type", "detail"}` bodies map to invalid input naming the
//! fields the tool refused (400), unauthorized (401, 403), not found (404),
//! conflict (409), rate limited (429, after `Retry-After`) and unavailable
//! (5xx).

use std::collections::BTreeMap;

use junction_sdk::canonical::Money;
use junction_sdk::http::{Request, Response, encode_component};
use junction_sdk::{
    Connector, Context, Error, Event, JsonSchema, Operation, Operations, Page, Result, Trigger,
    WebhookRequest, rest,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

struct ProposalTool;

impl Connector for ProposalTool {
    fn operations() -> Operations {
        Operations::new()
            .with(Operation::new(
                "create-proposal",
                "Creates a draft proposal",
                create_proposal,
            ))
            .with(
                Operation::new("get-proposal", "Reads a proposal by id", get_proposal).idempotent(),
            )
            .with(
                Operation::new(
                    "list-proposals",
                    "Lists one page of proposals, optionally with a status",
                    list_proposals,
                )
                .idempotent(),
            )
            .with(Operation::read::<ProposalTool>())
    }

    fn check(ctx: &Context) -> Result<()> {
        send(Request::get(url(ctx, "/proposals?count=1")?)).map(drop)
    }

    fn read(ctx: &Context, stream: &str, cursor: Option<String>) -> Result<Page> {
        if stream != PROPOSALS {
            return Err(rest::unknown_stream(stream, &[PROPOSALS]));
        }
        let page = rest::page_cursor(PROPOSALS, cursor.as_deref())?;
        let listed = proposals_page(
            ctx,
            &ListProposals {
                page: Some(page),
                ..ListProposals::default()
            },
        )?;
        let next = listed.next_page.map(|n| n.to_string());
        let done = next.is_none();
        Page::from_records(&listed.proposals, next, done)
    }

    fn handle_webhook(ctx: &Context, request: WebhookRequest) -> Result<Vec<Event>> {
        let delivery: Delivery = request.json().map_err(|e| {
            Error::InvalidInput(format!(
                "a proposal-tool webhook body is {{\"event\", \"event_id\", \"occurred_at\", \
                 \"data\"}}: {e}"
            ))
        })?;
        if delivery.event != ACCEPTED {
            junction_sdk::log::info(format!(
                "ignoring proposal-tool event `{}` ({})",
                delivery.event, delivery.event_id
            ));
            return Ok(Vec::new());
        }
        Ok(vec![accepted_event(&ctx.connection, delivery)?])
    }

    fn triggers() -> Vec<Trigger> {
        vec![Trigger {
            event_type: ACCEPTED.into(),
            description: "The client accepted a proposal".into(),
            schema: junction_sdk::schema_of::<AcceptedData>(),
        }]
    }

    fn config_schema() -> String {
        junction_sdk::schema_of::<Config>()
    }
}

junction_sdk::export_connector!(ProposalTool, name = "proposal");

/// Settings of a proposal-tool connection.
#[derive(JsonSchema)]
// Only its schema is used: settings are read one by one through the context.
#[allow(dead_code)]
struct Config {
    /// The API's address; `https://api.pandadoc.com` by default.
    base_url: Option<String>,
    /// Proposals per page of a stream, 1 to 100; 50 by default.
    page_size: Option<String>,
}

const API_PATH: &str = "/public/v1";
const PROPOSALS: &str = "proposals";
const ACCEPTED: &str = "proposal.accepted";
/// The largest page the tool serves.
const MAX_PAGE_SIZE: u32 = 100;
const DEFAULT_PAGE_SIZE: u32 = 50;

fn url(ctx: &Context, path: &str) -> Result<String> {
    let base = ctx
        .config("base_url")
        .unwrap_or_else(|| "https://api.pandadoc.com".into());
    Ok(format!("{}{API_PATH}{path}", base.trim_end_matches('/')))
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

/// The tool's error body: `detail` is a message, or the refused fields with
/// their messages.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default, rename = "type")]
    kind: String,
    detail: Value,
}

/// The error case of a failed request: the status decides the case, the
/// tool's body the message.
fn failure(response: Response) -> Error {
    let Ok(body) = serde_json::from_slice::<ErrorBody>(&response.body) else {
        return rest::refusal(&response, &response.text());
    };
    let detail = match &body.detail {
        Value::Object(fields) => fields
            .iter()
            .map(|(field, messages)| {
                let messages = match messages {
                    Value::Array(list) => list
                        .iter()
                        .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(" "),
                    other => other
                        .as_str()
                        .map_or_else(|| other.to_string(), str::to_owned),
                };
                format!("`{field}`: {messages}")
            })
            .collect::<Vec<_>>()
            .join("; "),
        Value::String(message) => message.clone(),
        other => other.to_string(),
    };
    let message = format!(
        "the proposal tool refused the request ({}): {detail}",
        body.kind
    );
    rest::refusal(&response, &message)
}

/// Someone a proposal is sent to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Recipient {
    /// E-mail address.
    email: String,
    /// First name.
    #[serde(default)]
    first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    last_name: Option<String>,
}

/// A proposal as the tool returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Proposal {
    /// The tool's id, e.g. `prop_0001`.
    id: String,
    /// Name.
    name: String,
    /// `proposal.draft`, `proposal.sent`, `proposal.accepted` or `proposal.declined`.
    status: String,
    /// Who it is sent to.
    recipients: Vec<Recipient>,
    /// The proposal's value.
    grand_total: Option<Money>,
    /// The caller's strings, e.g. `{"hubspot_deal_id": "9876543201"}`.
    metadata: BTreeMap<String, String>,
    /// RFC 3339.
    date_created: String,
    /// RFC 3339.
    date_modified: String,
    /// RFC 3339, once sent.
    date_sent: Option<String>,
    /// RFC 3339, once accepted.
    date_accepted: Option<String>,
}

/// Input of `create-proposal`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateProposal {
    /// Name, e.g. `Acme rollout: statement of work`.
    name: String,
    /// Who it is sent to; at least one.
    recipients: Vec<Recipient>,
    /// The proposal's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grand_total: Option<Money>,
    /// Strings to keep with the proposal and get back in its webhook, e.g.
    /// the CRM deal id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<String, String>,
}

fn create_proposal(ctx: &Context, input: CreateProposal) -> Result<Proposal> {
    send(Request::post(url(ctx, "/proposals")?).json(&input)?)?.json()
}

/// Input of `get-proposal`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GetProposal {
    /// The tool's id, e.g. `prop_0001`.
    id: String,
}

fn get_proposal(ctx: &Context, input: GetProposal) -> Result<Proposal> {
    if input.id.trim().is_empty() {
        return Err(Error::InvalidInput("`id` must not be empty".into()));
    }
    let path = format!("/proposals/{}", encode_component(input.id.trim()));
    send(Request::get(url(ctx, &path)?))?.json()
}

/// Input of `list-proposals`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListProposals {
    /// Only proposals with this status, e.g. `proposal.accepted`.
    #[serde(default)]
    status: Option<String>,
    /// The page, from 1; 1 when absent.
    #[serde(default)]
    page: Option<u32>,
    /// Proposals per page, 1 to 100; the connection's `page_size` when absent.
    #[serde(default)]
    count: Option<u32>,
}

/// One page of proposals.
#[derive(Debug, Serialize, JsonSchema)]
struct Proposals {
    /// In creation order.
    proposals: Vec<Proposal>,
    /// This page's number.
    page: u32,
    /// The next page's number; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page: Option<u32>,
}

fn proposals_page(ctx: &Context, input: &ListProposals) -> Result<Proposals> {
    let (page, count) = rest::paging(
        ctx,
        input.page,
        input.count,
        "count",
        (DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
    )?;
    let mut path = format!("/proposals?page={page}&count={count}");
    if let Some(status) = &input.status {
        path.push_str(&format!("&status={}", encode_component(status.trim())));
    }
    #[derive(Deserialize)]
    struct Listed {
        results: Vec<Proposal>,
    }
    let listed: Listed = send(Request::get(url(ctx, &path)?))?.json()?;
    // The tool says no more than that a page shorter than `count` is the last.
    let full = listed.results.len() == count as usize;
    Ok(Proposals {
        proposals: listed.results,
        page,
        next_page: full.then_some(page + 1),
    })
}

fn list_proposals(ctx: &Context, input: ListProposals) -> Result<Proposals> {
    proposals_page(ctx, &input)
}

/// A webhook delivery.
#[derive(Debug, Deserialize)]
struct Delivery {
    event: String,
    event_id: String,
    occurred_at: String,
    data: Value,
}

/// The data of a `proposal.accepted` event.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct AcceptedData {
    /// The proposal's id.
    proposal_id: String,
    /// Its name.
    name: String,
    /// The caller's strings kept with it, e.g. the CRM deal id.
    metadata: BTreeMap<String, String>,
    /// Its value.
    grand_total: Option<Money>,
    /// The whole proposal as the tool sent it.
    proposal: Value,
}

fn accepted_event(connection: &str, delivery: Delivery) -> Result<Event> {
    let proposal: Proposal = serde_json::from_value(delivery.data.clone()).map_err(|e| {
        Error::InvalidInput(format!(
            "event {}: `data` is not a proposal: {e}",
            delivery.event_id
        ))
    })?;
    if delivery.event_id.trim().is_empty() {
        return Err(Error::InvalidInput(
            "a webhook delivery needs an `event_id`".into(),
        ));
    }
    let data = AcceptedData {
        proposal_id: proposal.id.clone(),
        name: proposal.name,
        metadata: proposal.metadata,
        grand_total: proposal.grand_total,
        proposal: delivery.data,
    };
    Ok(Event {
        id: delivery.event_id,
        event_type: ACCEPTED.into(),
        source: format!("proposal/{connection}"),
        subject: Some(proposal.id),
        time: delivery.occurred_at,
        data: json!(data).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposal() -> Value {
        json!({
            "id": "prop_0001", "name": "Acme rollout SOW", "status": "proposal.accepted",
            "recipients": [{"email": "cfo@acme.example", "first_name": "Ann", "last_name": null}],
            "grand_total": {"amount": 120000.0, "currency": "USD"},
            "metadata": {"hubspot_deal_id": "9876543201"},
            "date_created": "2026-11-02T09:00:00.000Z", "date_modified": "2026-11-03T10:00:00.000Z",
            "date_sent": "2026-11-02T09:30:00.000Z", "date_accepted": "2026-11-03T10:00:00.000Z"
        })
    }

    fn webhook(body: Value) -> WebhookRequest {
        WebhookRequest {
            method: "POST".into(),
            path: "/v1/webhooks/proposal".into(),
            headers: vec![("x-proposal-event".into(), "proposal.accepted".into())],
            body: body.to_string().into_bytes(),
        }
    }

    fn ctx() -> Context {
        Context {
            connection: "proposals".into(),
            ..Context::default()
        }
    }

    #[test]
    fn an_accepted_proposal_becomes_one_event_with_its_id_and_metadata() {
        let body = json!({"event": "proposal.accepted", "event_id": "evt_0007",
                          "occurred_at": "2026-11-03T10:00:00.123Z", "data": proposal()});
        let events = ProposalTool::handle_webhook(&ctx(), webhook(body)).unwrap();
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.id, "evt_0007");
        assert_eq!(event.event_type, "proposal.accepted");
        assert_eq!(event.source, "proposal/proposals");
        assert_eq!(event.subject.as_deref(), Some("prop_0001"));
        assert_eq!(event.time, "2026-11-03T10:00:00.123Z");
        let data: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(data["proposalId"], "prop_0001");
        assert_eq!(data["metadata"], json!({"hubspot_deal_id": "9876543201"}));
        assert_eq!(data["grandTotal"]["amount"], 120000.0);
        assert_eq!(data["proposal"], proposal());
    }

    #[test]
    fn other_events_are_ignored_and_broken_bodies_refused() {
        let declined = json!({"event": "proposal.declined", "event_id": "evt_0008",
                              "occurred_at": "2026-11-03T10:00:00Z", "data": proposal()});
        assert_eq!(
            ProposalTool::handle_webhook(&ctx(), webhook(declined)),
            Ok(vec![])
        );
        let broken = json!({"event": "proposal.accepted", "event_id": "evt_0009",
                            "occurred_at": "2026-11-03T10:00:00Z", "data": {"id": 1}});
        assert!(matches!(
            ProposalTool::handle_webhook(&ctx(), webhook(broken)),
            Err(Error::InvalidInput(m)) if m.contains("evt_0009")
        ));
        assert!(matches!(
            ProposalTool::handle_webhook(&ctx(), webhook(json!([1, 2]))),
            Err(Error::InvalidInput(_))
        ));
    }

    fn response(status: u16, headers: &[(&str, &str)], body: Value) -> Response {
        Response::new(status, headers, body.to_string())
    }

    #[test]
    fn error_bodies_map_to_cases_naming_the_fields() {
        let invalid = failure(response(
            400,
            &[],
            json!({"type": "request_error",
                   "detail": {"recipients[0].email": ["\"x\" is not an e-mail address"]}}),
        ));
        assert!(
            matches!(&invalid, Error::InvalidInput(m) if m.contains("`recipients[0].email`: \"x\" is not an e-mail address")),
            "{invalid:?}"
        );
        let detail = |kind: &str, message: &str| json!({"type": kind, "detail": message});
        assert!(matches!(
            failure(response(401, &[], detail("authentication_error", "no key"))),
            Error::Unauthorized(m) if m.contains("no key")
        ));
        assert!(matches!(
            failure(response(404, &[], detail("request_error", "Not found."))),
            Error::NotFound(_)
        ));
        assert!(matches!(
            failure(response(500, &[], detail("server_error", "oops"))),
            Error::Unavailable(_)
        ));
        assert_eq!(
            failure(response(
                429,
                &[("Retry-After", "12")],
                detail("request_error", "Request was throttled.")
            )),
            Error::RateLimited {
                retry_after_ms: 12_000
            }
        );
    }

    #[test]
    fn proposals_are_created_with_only_what_was_given() {
        let input: CreateProposal = serde_json::from_value(json!({
            "name": "SOW", "recipients": [{"email": "a@b.example"}]
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&input).unwrap(),
            json!({"name": "SOW", "recipients": [{"email": "a@b.example", "first_name": null, "last_name": null}]})
        );
        assert!(
            serde_json::from_value::<CreateProposal>(
                json!({"name": "SOW", "recipients": [], "total": 1})
            )
            .is_err()
        );
    }

    #[test]
    fn operations_match_the_manifest() {
        let manifest = include_str!("../plugin.toml");
        let names: Vec<String> = ProposalTool::operations()
            .names()
            .map(|n| format!("\"{n}\""))
            .collect();
        assert!(
            manifest.contains(&format!("operations = [{}]", names.join(", "))),
            "{names:?}"
        );
    }
}
