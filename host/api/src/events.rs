//! `/v1/events`: the outbox as a feed of CloudEvents, for consumers without
//! NATS (and for catching up with what JetStream holds).

use axum::Json;
use axum::extract::{Query, State};
use serde::Serialize;

use crate::config::Scope;
use crate::error::{ApiError, Refused};
use crate::extract::{ApiState, Caller};
use junction_runtime::runtime::ConnectionError;
use junction_store::{CloudEvent, Cursor};

/// Which events.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// Only events after this cursor (the `next` of the previous page);
    /// without it, from the oldest event the host keeps.
    after: Option<String>,
    /// At most this many (default 100, at most 1000).
    limit: Option<u32>,
}

/// A page of the feed, oldest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EventPage {
    /// CloudEvents 1.0 in the structured JSON format.
    events: Vec<CloudEvent>,
    /// Pass as `after` for the next page (the same cursor when the page is
    /// empty: nothing newer yet).
    next: String,
}

/// The events the host emitted or passed on, oldest first: runs started,
/// completed, failed, compensated and dead-lettered, steps completed, and
/// the events webhooks delivered.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    security(("bearer" = ["read"])),
    params(EventsQuery),
    responses(Refused,
        (status = 200, description = "A page of the feed", body = EventPage),
        (status = 400, description = "The cursor is not one the feed gave (`bad_request`)", body = crate::error::ErrorBody)))]
pub(crate) async fn list_events(
    caller: Caller,
    State(state): State<ApiState>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<EventPage>, ApiError> {
    caller.require(Scope::Read)?;
    let after = match query.after.as_deref() {
        None | Some("") => None,
        Some(text) => Some(Cursor::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "`after={text}` is not a cursor of the feed: pass the `next` of a page \
                     (`<number>.<number>`), or leave it out to start from the oldest event"
            ))
        })?),
    };
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let rows = state
        .runtime
        .store()
        .events_after(after, limit)
        .await
        .map_err(ConnectionError::from)?;
    let next = rows
        .last()
        .map(|r| r.cursor)
        .or(after)
        .unwrap_or_default()
        .to_string();
    Ok(Json(EventPage {
        events: rows.into_iter().map(|r| r.event).collect(),
        next,
    }))
}
