//! `POST /crm/v3/objects/{type}/search`: filter groups and paging.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::server::lock;

use super::errors::validation_error;
use super::objects::{object_type, parse_json};
use super::*;

/// Whether `object` passes one search filter.
fn filter_holds(object: &CrmObject, filter: &Value) -> Result<bool, String> {
    let name = filter
        .get("propertyName")
        .and_then(Value::as_str)
        .ok_or("a filter needs a propertyName")?;
    let actual = match name {
        "hs_object_id" => Some(object.id.to_string()),
        _ => object
            .properties
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let expected = match filter.get("value") {
        Some(Value::String(value)) => Some(value.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    let operator = filter
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or("EQ");
    // Enumerated and text values compare case-insensitively in HubSpot search.
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    match operator {
        "EQ" => Ok(matches!((&actual, &expected), (Some(a), Some(b)) if same(a, b))),
        "NEQ" => Ok(!matches!((&actual, &expected), (Some(a), Some(b)) if same(a, b))),
        "HAS_PROPERTY" => Ok(actual.is_some_and(|a| !a.is_empty())),
        other => Err(format!("Unsupported operator for this stand-in: {other}")),
    }
}

pub(super) async fn search(
    State(state): State<Arc<HubspotState>>,
    Path(object_type_name): Path<String>,
    body: Bytes,
) -> Response {
    let kind = match object_type(&object_type_name) {
        Ok(kind) => kind,
        Err(response) => return response,
    };
    let request = match parse_json(&body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let groups: Vec<Value> = request
        .get("filterGroups")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let limit = request
        .get("limit")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_PAGE_SIZE, |l| {
            usize::try_from(l).unwrap_or(MAX_PAGE_SIZE)
        })
        .clamp(1, 200);
    // Search cursors are offsets into the result, as HubSpot's are.
    let offset = match request.get("after") {
        None | Some(Value::Null) => 0,
        Some(Value::String(after)) => after.parse::<usize>().unwrap_or(usize::MAX),
        Some(Value::Number(after)) => after
            .as_u64()
            .and_then(|a| usize::try_from(a).ok())
            .unwrap_or(usize::MAX),
        Some(_) => usize::MAX,
    };
    let only: Option<Vec<String>> = request
        .get("properties")
        .and_then(Value::as_array)
        .map(|p| {
            p.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        });

    let store = lock(&state.store);
    let mut matched = Vec::new();
    for object in store.objects.iter().filter(|o| o.kind == kind) {
        let mut any_group = groups.is_empty();
        for group in &groups {
            let filters = group
                .get("filters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut all = true;
            for filter in &filters {
                match filter_holds(object, filter) {
                    Ok(holds) => all &= holds,
                    Err(message) => return validation_error(&message),
                }
            }
            any_group |= all;
        }
        if any_group {
            matched.push(object);
        }
    }
    let total = matched.len();
    let results: Vec<Value> = matched
        .iter()
        .skip(offset)
        .take(limit)
        .map(|o| o.read_json(only.as_deref()))
        .collect();
    let mut page = json!({ "total": total, "results": results });
    let next = offset.saturating_add(limit);
    if next < total
        && let Some(object) = page.as_object_mut()
    {
        object.insert(
            "paging".into(),
            json!({ "next": { "after": next.to_string() } }),
        );
    }
    axum::Json(page).into_response()
}
