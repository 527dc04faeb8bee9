//! HubSpot connector: deals and companies over the CRM v3 objects API, and
//! webhook deliveries as events.
//!
//! Connection settings: `base_url` (`https://api.hubapi.com` by default),
//! `page_size` (records per page of a stream, 1 to 100, 100 by default) and
//! `closed_won_stage` (the deal stage id that means closed-won, `closedwon`
//! by default). The host adds the private app's access token; this plugin
//! never sees it.
//!
//! Operations take and return HubSpot's own shapes: objects are
//! `{"id", "properties", "createdAt", "updatedAt", "archived"}` (plus
//! `associations` when a get asks for them, e.g. a deal's `companies`; and
//! `update-deal` takes `{"id", "properties"}`), search takes
//! `{"filterGroups", "properties", "limit", "after"}` and answers
//! `{"total", "results", "paging"}`, batch reads take `{"inputs": [{"id"}],
//! "properties"}` and answer `{"status", "results", "errors"?}` (ids that
//! do not exist are listed in `errors`, not an error of the call).
//!
//! Streams (`read`, and the `read` operation): `deals` and `companies`
//! (every object, in HubSpot's list order) and `closed-won-deals`; the
//! cursor is HubSpot's `after`, and the last page has none.
//!
//! Webhooks: a delivery (a JSON array of events, its v3 signature checked by
//! the host) becomes one event per HubSpot event, of type its
//! `subscriptionType` (`deal.propertyChange`, `deal.creation`, ...), id
//! `{subscriptionId}-{eventId}` (the same on every redelivery), source
//! `hubspot/{portalId}`, subject the object id, and the HubSpot event as
//! data. A deal's `dealstage` changing to the closed-won stage also yields
//! a `deal.closed_won` event (id suffixed `-closed_won`).
//!
//! Errors: `{"status":"error","message","category"}` bodies map to invalid
//! input naming the properties HubSpot refused (400), unauthorized (401,
//! 403), not found (404), conflict (409), rate limited (429, after
//! `Retry-After` or else the policy's interval) and unavailable (5xx).

use junction_sdk::http::{Request, Response};
use junction_sdk::rest::{page_size, refusal};
use junction_sdk::time::rfc3339_from_unix_millis;
use junction_sdk::{
    Connector, Context, Error, Event, JsonSchema, Operation, Operations, Page, Result, Trigger,
    WebhookRequest,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

struct Hubspot;

impl Connector for Hubspot {
    fn operations() -> Operations {
        Operations::new()
            .with(Operation::new("get-deal", "Reads a deal by id", get_deal).idempotent())
            .with(
                Operation::new("update-deal", "Sets properties of a deal", update_deal)
                    .idempotent(),
            )
            .with(Operation::new("get-company", "Reads a company by id", get_company).idempotent())
            .with(
                Operation::new(
                    "search-deals",
                    "Searches deals with filter groups",
                    search_deals,
                )
                .idempotent(),
            )
            .with(
                Operation::new(
                    "search-companies",
                    "Searches companies with filter groups",
                    search_companies,
                )
                .idempotent(),
            )
            .with(
                Operation::new(
                    "batch-read-deals",
                    "Reads up to 100 deals by id",
                    batch_read_deals,
                )
                .idempotent(),
            )
            .with(
                Operation::new(
                    "batch-read-companies",
                    "Reads up to 100 companies by id",
                    batch_read_companies,
                )
                .idempotent(),
            )
            .with(Operation::read::<Hubspot>())
    }

    fn check(ctx: &Context) -> Result<()> {
        let url = format!("{}/crm/v3/objects/deals?limit=1", base_url(ctx));
        send(Request::get(url)).map(drop)
    }

    fn read(ctx: &Context, stream: &str, cursor: Option<String>) -> Result<Page> {
        let after = cursor.as_deref().map(cursor_value).transpose()?;
        let page: SearchPage = match stream {
            "deals" => list(ctx, Kind::Deals, after)?,
            "companies" => list(ctx, Kind::Companies, after)?,
            "closed-won-deals" => {
                let stage = closed_won_stage(ctx);
                let search = Search {
                    filter_groups: vec![FilterGroup {
                        filters: vec![Filter {
                            property_name: "dealstage".into(),
                            operator: "EQ".into(),
                            value: Some(Value::String(stage)),
                        }],
                    }],
                    properties: Some(Kind::Deals.properties()),
                    limit: Some(page_size(ctx, 100, 100)?),
                    after: after.map(str::to_owned),
                };
                run_search(ctx, Kind::Deals, &search)?
            }
            other => {
                return Err(Error::InvalidInput(format!(
                    "unknown stream `{other}`; this connector offers: deals, companies, \
                     closed-won-deals"
                )));
            }
        };
        let next = page.paging.map(|p| p.next.after);
        let done = next.is_none();
        Page::from_records(&page.results, next, done)
    }

    fn handle_webhook(ctx: &Context, request: WebhookRequest) -> Result<Vec<Event>> {
        let deliveries: Vec<Value> = request.json().map_err(|e| {
            Error::InvalidInput(format!(
                "a HubSpot webhook body is a JSON array of events: {e}"
            ))
        })?;
        let stage = closed_won_stage(ctx);
        let mut events = Vec::with_capacity(deliveries.len());
        for (index, raw) in deliveries.into_iter().enumerate() {
            let event: WebhookEvent = serde_json::from_value(raw.clone())
                .map_err(|e| Error::InvalidInput(format!("HubSpot webhook event {index}: {e}")))?;
            events.extend(to_events(&event, &raw, &stage));
        }
        Ok(events)
    }

    fn triggers() -> Vec<Trigger> {
        let schema = junction_sdk::schema_of::<WebhookEvent>();
        let trigger = |event_type: &str, description: &str| Trigger {
            event_type: event_type.into(),
            description: description.into(),
            schema: schema.clone(),
        };
        vec![
            trigger(
                CLOSED_WON_EVENT,
                "A deal moved to the closed-won stage (from a dealstage change)",
            ),
            trigger("deal.creation", "A deal was created"),
            trigger("deal.propertyChange", "A property of a deal changed"),
            trigger("company.creation", "A company was created"),
            trigger("company.propertyChange", "A property of a company changed"),
        ]
    }

    fn config_schema() -> String {
        junction_sdk::schema_of::<Config>()
    }
}

junction_sdk::export_connector!(Hubspot);

/// Settings of a HubSpot connection.
#[derive(JsonSchema)]
// Only its schema is used: settings are read one by one through the context.
#[allow(dead_code)]
struct Config {
    /// The API's base URL; `https://api.hubapi.com` by default.
    base_url: Option<String>,
    /// Records per page of a stream, 1 to 100; 100 by default.
    page_size: Option<String>,
    /// The deal stage id that means closed-won; `closedwon` by default.
    closed_won_stage: Option<String>,
}

const CLOSED_WON_EVENT: &str = "deal.closed_won";

fn base_url(ctx: &Context) -> String {
    ctx.config("base_url")
        .unwrap_or_else(|| "https://api.hubapi.com".into())
        .trim_end_matches('/')
        .to_owned()
}

fn closed_won_stage(ctx: &Context) -> String {
    ctx.config("closed_won_stage")
        .unwrap_or_else(|| "closedwon".into())
}

/// A cursor or id as it may go into a URL: HubSpot's are digits and letters.
fn cursor_value(text: &str) -> Result<&str> {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Ok(text)
    } else {
        Err(Error::InvalidInput(format!(
            "cursor `{text}` is not one this connector returned"
        )))
    }
}

/// The object types this connector reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Deals,
    Companies,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Deals => "deals",
            Kind::Companies => "companies",
        }
    }

    /// The properties a stream reads.
    fn properties(self) -> Vec<String> {
        let names: &[&str] = match self {
            Kind::Deals => &[
                "dealname",
                "dealstage",
                "amount",
                "closedate",
                "pipeline",
                "deal_currency_code",
                "hs_lastmodifieddate",
            ],
            Kind::Companies => &[
                "name",
                "domain",
                "industry",
                "city",
                "country",
                "hs_lastmodifieddate",
            ],
        };
        names.iter().map(|n| (*n).to_owned()).collect()
    }
}

/// Sends `request` and passes a 2xx response through; every other status
/// becomes the error case HubSpot's error body says.
fn send(request: Request) -> Result<Response> {
    let response = request.header("accept", "application/json").send()?;
    if response.is_success() {
        return Ok(response);
    }
    Err(failure(response))
}

/// HubSpot's error body.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    category: String,
    /// Per-property details some endpoints add.
    #[serde(default)]
    errors: Vec<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    context: Map<String, Value>,
}

/// The error case of a failed request, from its status and HubSpot's body.
fn failure(response: Response) -> Error {
    let status = response.status;
    if status == 429 {
        let interval = response
            .header("x-hubspot-ratelimit-interval-milliseconds")
            .and_then(|v| v.trim().parse().ok());
        return Error::RateLimited {
            retry_after_ms: response.retry_after_ms().or(interval).unwrap_or(1000),
        };
    }
    let Ok(body) = serde_json::from_slice::<ErrorBody>(&response.body) else {
        return match response.ok() {
            Ok(_) => Error::Internal(format!("HubSpot answered {status}")),
            Err(error) => error,
        };
    };
    let fields = refused_properties(&body);
    let message = if fields.is_empty() {
        format!("HubSpot says ({}): {}", body.category, body.message)
    } else {
        format!(
            "HubSpot refused {} ({}): {}",
            fields.join(", "),
            body.category,
            body.message
        )
    };
    refusal(&response, &message)
}

/// The properties a validation error names: in `errors[].context.propertyName`,
/// or in the JSON list HubSpot embeds in the message
/// (`Property values were not valid: [{..., "name": "dealname"}]`).
fn refused_properties(body: &ErrorBody) -> Vec<String> {
    let mut names: Vec<String> = body
        .errors
        .iter()
        .flat_map(|e| e.context.get("propertyName").and_then(Value::as_array))
        .flatten()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    if let Some(start) = body.message.find('[')
        && let Ok(Value::Array(items)) = serde_json::from_str::<Value>(&body.message[start..])
    {
        names.extend(
            items
                .iter()
                .filter_map(|i| i.get("name")?.as_str().map(str::to_owned)),
        );
    }
    names.dedup();
    names
}

/// Input of `get-deal` and `get-company`.
#[derive(Debug, Deserialize, JsonSchema)]
struct GetObject {
    /// The object's id, e.g. `9876543201`.
    id: String,
    /// The properties to read; HubSpot's default set when absent.
    #[serde(default)]
    properties: Option<Vec<String>>,
    /// Object types whose associated ids to return too, e.g. `["companies"]`
    /// for a deal's companies.
    #[serde(default)]
    associations: Option<Vec<String>>,
}

/// A CRM object as HubSpot returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct CrmObject {
    /// The object's id.
    id: String,
    /// Its properties; HubSpot sends every value as a string (or null).
    properties: Map<String, Value>,
    /// When it was created, RFC 3339.
    #[serde(rename = "createdAt")]
    created_at: String,
    /// When it last changed, RFC 3339.
    #[serde(rename = "updatedAt")]
    updated_at: String,
    /// Whether it is archived.
    #[serde(default)]
    archived: bool,
    /// The associated objects asked for with `associations`, by type:
    /// `{"companies": {"results": [{"id", "type"}]}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    associations: Option<Map<String, Value>>,
}

/// `names` joined for a query string; refuses a name that could change the
/// URL it goes into. `what` is the input field, for the message.
fn name_list(what: &str, names: &[String]) -> Result<String> {
    for name in names {
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Error::InvalidInput(format!(
                "`{what}` holds `{name}`, which is not a HubSpot name"
            )));
        }
    }
    Ok(names.join(","))
}

/// The URL of one object; refuses an id that is not one.
fn object_url(ctx: &Context, kind: Kind, id: &str) -> Result<String> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::InvalidInput(format!(
            "`id` must be a HubSpot object id such as 9876543201, not `{id}`"
        )));
    }
    Ok(format!(
        "{}/crm/v3/objects/{}/{id}",
        base_url(ctx),
        kind.path()
    ))
}

fn get_object(ctx: &Context, kind: Kind, input: GetObject) -> Result<CrmObject> {
    let mut url = object_url(ctx, kind, &input.id)?;
    let mut query = Vec::new();
    if let Some(properties) = &input.properties {
        query.push(format!(
            "properties={}",
            name_list("properties", properties)?
        ));
    }
    if let Some(types) = &input.associations {
        query.push(format!(
            "associations={}",
            name_list("associations", types)?
        ));
    }
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    send(Request::get(url))?.json()
}

fn get_deal(ctx: &Context, input: GetObject) -> Result<CrmObject> {
    get_object(ctx, Kind::Deals, input)
}

/// Input of `update-deal`.
#[derive(Debug, Deserialize, JsonSchema)]
struct UpdateDeal {
    /// The deal's id.
    id: String,
    /// The properties to set, e.g. `{"dealstage": "closedwon"}`.
    properties: Map<String, Value>,
}

fn update_deal(ctx: &Context, input: UpdateDeal) -> Result<CrmObject> {
    let url = object_url(ctx, Kind::Deals, &input.id)?;
    let body = serde_json::json!({ "properties": input.properties });
    send(Request::patch(url).json(&body)?)?.json()
}

fn get_company(ctx: &Context, input: GetObject) -> Result<CrmObject> {
    get_object(ctx, Kind::Companies, input)
}

/// Input of `search-deals` and `search-companies`: HubSpot's search body.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
struct Search {
    /// Any group may match; the filters within a group must all hold.
    /// Without groups, every object matches.
    #[serde(rename = "filterGroups", default)]
    filter_groups: Vec<FilterGroup>,
    /// The properties to return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    properties: Option<Vec<String>>,
    /// Results per page, up to 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
    /// `paging.next.after` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
}

/// Filters that must all hold.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
struct FilterGroup {
    /// The filters.
    filters: Vec<Filter>,
}

/// One condition on a property.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
struct Filter {
    /// The property, e.g. `dealstage`.
    #[serde(rename = "propertyName")]
    property_name: String,
    /// `EQ`, `NEQ`, `HAS_PROPERTY`, `GT`, ...
    operator: String,
    /// The value to compare with; absent for `HAS_PROPERTY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
}

/// A page of search or list results, as HubSpot returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct SearchPage {
    /// Matching objects (search only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    /// This page's objects.
    results: Vec<CrmObject>,
    /// Where the next page starts; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    paging: Option<Paging>,
}

/// `paging` of a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Paging {
    /// The next page.
    next: NextPage,
}

/// `paging.next` of a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct NextPage {
    /// Pass as `after` to read the next page.
    after: String,
}

fn run_search(ctx: &Context, kind: Kind, search: &Search) -> Result<SearchPage> {
    let url = format!("{}/crm/v3/objects/{}/search", base_url(ctx), kind.path());
    send(Request::post(url).json(search)?)?.json()
}

fn search_deals(ctx: &Context, input: Search) -> Result<SearchPage> {
    run_search(ctx, Kind::Deals, &input)
}

fn search_companies(ctx: &Context, input: Search) -> Result<SearchPage> {
    run_search(ctx, Kind::Companies, &input)
}

fn list(ctx: &Context, kind: Kind, after: Option<&str>) -> Result<SearchPage> {
    let mut url = format!(
        "{}/crm/v3/objects/{}?limit={}&properties={}",
        base_url(ctx),
        kind.path(),
        page_size(ctx, 100, 100)?,
        name_list("properties", &kind.properties())?
    );
    if let Some(after) = after {
        url.push_str("&after=");
        url.push_str(after);
    }
    send(Request::get(url))?.json()
}

/// Input of `batch-read-deals` and `batch-read-companies`: HubSpot's body.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
struct BatchRead {
    /// The objects to read, `[{"id": "9876543201"}]`.
    inputs: Vec<BatchId>,
    /// The properties to return; HubSpot's default set when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    properties: Option<Vec<String>>,
}

/// One object of a batch read.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
struct BatchId {
    /// The object's id.
    id: String,
}

/// What a batch read answers.
#[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
struct BatchResult {
    /// `COMPLETE`.
    status: String,
    /// The objects found.
    results: Vec<CrmObject>,
    /// Which ids were not found, as HubSpot reports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    errors: Vec<Value>,
}

fn batch_read(ctx: &Context, kind: Kind, input: BatchRead) -> Result<BatchResult> {
    let url = format!(
        "{}/crm/v3/objects/{}/batch/read",
        base_url(ctx),
        kind.path()
    );
    send(Request::post(url).json(&input)?)?.json()
}

fn batch_read_deals(ctx: &Context, input: BatchRead) -> Result<BatchResult> {
    batch_read(ctx, Kind::Deals, input)
}

fn batch_read_companies(ctx: &Context, input: BatchRead) -> Result<BatchResult> {
    batch_read(ctx, Kind::Companies, input)
}

/// One event of a HubSpot webhook delivery (the fields this connector reads;
/// the event's data is the whole object HubSpot sent).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct WebhookEvent {
    /// The event's id; the same on every delivery attempt.
    event_id: u64,
    /// The subscription it was sent for.
    subscription_id: u64,
    /// The HubSpot account.
    portal_id: u64,
    /// When it happened, Unix milliseconds.
    occurred_at: u64,
    /// E.g. `deal.propertyChange` or `company.creation`.
    subscription_type: String,
    /// The object the event is about.
    object_id: u64,
    /// The changed property, for property changes.
    #[serde(default)]
    property_name: Option<String>,
    /// Its new value, for property changes.
    #[serde(default)]
    property_value: Option<String>,
}

fn to_events(event: &WebhookEvent, raw: &Value, closed_won_stage: &str) -> Vec<Event> {
    let id = format!("{}-{}", event.subscription_id, event.event_id);
    let data = raw.to_string();
    let one = |id: String, event_type: &str| Event {
        id,
        event_type: event_type.to_owned(),
        source: format!("hubspot/{}", event.portal_id),
        subject: Some(event.object_id.to_string()),
        time: rfc3339_from_unix_millis(event.occurred_at),
        data: data.clone(),
    };
    let mut events = vec![one(id.clone(), &event.subscription_type)];
    let closed_won = event.subscription_type == "deal.propertyChange"
        && event.property_name.as_deref() == Some("dealstage")
        && event.property_value.as_deref() == Some(closed_won_stage);
    if closed_won {
        events.push(one(format!("{id}-closed_won"), CLOSED_WON_EVENT));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn response(status: u16, headers: &[(&str, &str)], body: Value) -> Response {
        Response::new(status, headers, body.to_string())
    }

    fn hubspot_error(category: &str, message: &str) -> Value {
        json!({"status": "error", "message": message, "correlationId": "x", "category": category})
    }

    #[test]
    fn validation_errors_name_the_properties() {
        let body = hubspot_error(
            "VALIDATION_ERROR",
            "Property values were not valid: [{\"isValid\":false,\"message\":\"dealname is \
             required\",\"error\":\"REQUIRED_FIELD\",\"name\":\"dealname\"}]",
        );
        let Error::InvalidInput(message) = failure(response(400, &[], body)) else {
            panic!("expected invalid input");
        };
        assert!(
            message.contains("HubSpot refused dealname (VALIDATION_ERROR)"),
            "{message}"
        );
        let body = json!({
            "status": "error", "message": "Invalid input", "category": "VALIDATION_ERROR",
            "errors": [{"message": "bad", "context": {"propertyName": ["amount"]}}]
        });
        assert!(matches!(
            failure(response(400, &[], body)),
            Error::InvalidInput(m) if m.contains("HubSpot refused amount")
        ));
    }

    #[test]
    fn statuses_map_to_error_cases() {
        let error = |status, headers: &[(&str, &str)], category| {
            failure(response(status, headers, hubspot_error(category, "m")))
        };
        assert!(
            matches!(error(401, &[], "INVALID_AUTHENTICATION"), Error::Unauthorized(m) if m.contains("INVALID_AUTHENTICATION"))
        );
        assert!(matches!(
            error(403, &[], "MISSING_SCOPES"),
            Error::Unauthorized(_)
        ));
        assert!(matches!(
            error(404, &[], "OBJECT_NOT_FOUND"),
            Error::NotFound(_)
        ));
        assert!(matches!(error(409, &[], "CONFLICT"), Error::Conflict(_)));
        assert!(matches!(
            error(502, &[], "INTERNAL_ERROR"),
            Error::Unavailable(_)
        ));
        assert_eq!(
            error(429, &[("Retry-After", "2")], "RATE_LIMITS"),
            Error::RateLimited {
                retry_after_ms: 2000
            }
        );
        assert_eq!(
            error(
                429,
                &[("X-HubSpot-RateLimit-Interval-Milliseconds", "10000")],
                "RATE_LIMITS"
            ),
            Error::RateLimited {
                retry_after_ms: 10_000
            }
        );
        let html = Response::new(503, &[], "<html>");
        assert!(matches!(failure(html), Error::Unavailable(_)));
    }

    fn delivery_event(property: &str, value: &str) -> Value {
        json!({
            "eventId": 100, "subscriptionId": 2473812, "portalId": 62515, "appId": 1160452,
            "occurredAt": 1_714_555_800_123u64, "subscriptionType": "deal.propertyChange",
            "attemptNumber": 0, "objectId": 9876543201u64, "propertyName": property,
            "propertyValue": value, "changeSource": "CRM", "sourceId": "userId:1234567"
        })
    }

    #[test]
    fn a_dealstage_change_to_closed_won_is_also_a_closed_won_event() {
        let raw = delivery_event("dealstage", "closedwon");
        let event: WebhookEvent = serde_json::from_value(raw.clone()).unwrap();
        let events = to_events(&event, &raw, "closedwon");
        let summary: Vec<_> = events
            .iter()
            .map(|e| (e.id.as_str(), e.event_type.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("2473812-100", "deal.propertyChange"),
                ("2473812-100-closed_won", "deal.closed_won")
            ]
        );
        let first = &events[0];
        assert_eq!(first.source, "hubspot/62515");
        assert_eq!(first.subject.as_deref(), Some("9876543201"));
        assert_eq!(first.time, "2024-05-01T09:30:00.123Z");
        assert_eq!(serde_json::from_str::<Value>(&first.data).unwrap(), raw);

        let raw = delivery_event("dealstage", "contractsent");
        let event: WebhookEvent = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(to_events(&event, &raw, "closedwon").len(), 1);
    }

    #[test]
    fn webhooks_that_are_not_hubspot_deliveries_are_invalid_input() {
        let request = |body: Value| WebhookRequest {
            method: "POST".into(),
            body: body.to_string().into_bytes(),
            ..WebhookRequest::default()
        };
        let ctx = Context::default();
        assert!(matches!(
            Hubspot::handle_webhook(&ctx, request(json!({"eventId": 1}))),
            Err(Error::InvalidInput(m)) if m.contains("JSON array")
        ));
        assert!(matches!(
            Hubspot::handle_webhook(&ctx, request(json!([{"eventId": 1}]))),
            Err(Error::InvalidInput(m)) if m.contains("event 0") && m.contains("subscriptionId")
        ));
        assert_eq!(
            Hubspot::handle_webhook(&ctx, request(json!([]))),
            Ok(vec![])
        );
    }

    #[test]
    fn ids_properties_and_cursors_that_would_change_the_url_are_refused() {
        let ctx = Context::default();
        let get = |id: &str| {
            get_deal(
                &ctx,
                GetObject {
                    id: id.into(),
                    properties: None,
                    associations: None,
                },
            )
        };
        assert!(matches!(get("../companies"), Err(Error::InvalidInput(m)) if m.contains("`id`")));
        assert!(name_list("properties", &["dealname".into(), "hs_object_id".into()]).is_ok());
        assert!(matches!(
            name_list("associations", &["a&after=1".into()]),
            Err(Error::InvalidInput(m)) if m.contains("`associations`")
        ));
        assert!(cursor_value("9876543203").is_ok());
        assert!(cursor_value("1&limit=100").is_err());
        assert!(matches!(
            Hubspot::read(&ctx, "contacts", None),
            Err(Error::InvalidInput(m)) if m.contains("closed-won-deals")
        ));
    }

    #[test]
    fn operations_and_triggers_are_described() {
        let names: Vec<_> = Hubspot::operations().names().map(str::to_owned).collect();
        assert_eq!(
            names,
            [
                "get-deal",
                "update-deal",
                "get-company",
                "search-deals",
                "search-companies",
                "batch-read-deals",
                "batch-read-companies",
                "read"
            ]
        );
        let triggers: Vec<_> = Hubspot::triggers()
            .into_iter()
            .map(|t| t.event_type)
            .collect();
        assert_eq!(triggers[0], "deal.closed_won");
        assert_eq!(triggers.len(), 5);
    }
}
