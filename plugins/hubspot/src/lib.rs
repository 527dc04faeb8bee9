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

mod api;
mod objects;
mod search;
mod webhooks;

#[cfg(test)]
mod tests;

use junction_sdk::http::Request;
use junction_sdk::rest::page_size;
use junction_sdk::{
    Connector, Context, Error, Event, JsonSchema, Operation, Operations, Page, Result, Trigger,
    WebhookRequest,
};
use serde_json::Value;

use crate::api::{Kind, base_url, closed_won_stage, cursor_value, send};
use crate::objects::{batch_read_companies, batch_read_deals, get_company, get_deal, update_deal};
use crate::search::{
    Filter, FilterGroup, Search, SearchPage, list, run_search, search_companies, search_deals,
};
use crate::webhooks::{WebhookEvent, to_events};

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
