//! HubSpot webhook deliveries as events.

use junction_sdk::time::rfc3339_from_unix_millis;
use junction_sdk::{Event, JsonSchema};
use serde::Deserialize;
use serde_json::Value;

use crate::CLOSED_WON_EVENT;

/// One event of a HubSpot webhook delivery (the fields this connector reads;
/// the event's data is the whole object HubSpot sent).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookEvent {
    /// The event's id; the same on every delivery attempt.
    pub(crate) event_id: u64,
    /// The subscription it was sent for.
    pub(crate) subscription_id: u64,
    /// The HubSpot account.
    pub(crate) portal_id: u64,
    /// When it happened, Unix milliseconds.
    pub(crate) occurred_at: u64,
    /// E.g. `deal.propertyChange` or `company.creation`.
    pub(crate) subscription_type: String,
    /// The object the event is about.
    pub(crate) object_id: u64,
    /// The changed property, for property changes.
    #[serde(default)]
    pub(crate) property_name: Option<String>,
    /// Its new value, for property changes.
    #[serde(default)]
    pub(crate) property_value: Option<String>,
}

pub(crate) fn to_events(event: &WebhookEvent, raw: &Value, closed_won_stage: &str) -> Vec<Event> {
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
