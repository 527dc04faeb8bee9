use super::*;
use serde_json::json;

use junction_sdk::http::Response;
use junction_sdk::{Context, Error, WebhookRequest};
use serde_json::Value;

use crate::api::{cursor_value, failure};
use crate::objects::{GetObject, get_deal, name_list};
use crate::webhooks::{WebhookEvent, to_events};

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
