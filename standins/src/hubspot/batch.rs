//! Batch create and batch read of CRM objects.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::server::{lock, rfc3339_millis};

use super::errors::validation_error;
use super::objects::{find, input_properties, new_object, object_type, parse_json, validate};
use super::*;

/// The `inputs` of a batch request, at most [`MAX_BATCH`] of them.
fn batch_inputs(request: &Value) -> Result<&Vec<Value>, Response> {
    let Some(inputs) = request.get("inputs").and_then(Value::as_array) else {
        return Err(validation_error(
            "Invalid input JSON: \"inputs\" is required",
        ));
    };
    if inputs.len() > MAX_BATCH {
        return Err(validation_error(&format!(
            "Batch input size {} exceeds the maximum of {MAX_BATCH}",
            inputs.len()
        )));
    }
    Ok(inputs)
}

pub(super) async fn batch_create(
    State(state): State<Arc<HubspotState>>,
    Path(object_type_name): Path<String>,
    body: Bytes,
) -> Response {
    let started_at = rfc3339_millis(SystemTime::now());
    let created = object_type(&object_type_name).and_then(|kind| {
        let request = parse_json(&body)?;
        let inputs = batch_inputs(&request)?;
        let mut all_properties = Vec::with_capacity(inputs.len());
        for input in inputs {
            let properties = input_properties(input)?;
            validate(kind, &properties)?;
            all_properties.push(properties);
        }
        let mut store = lock(&state.store);
        let mut results = Vec::with_capacity(all_properties.len());
        for properties in all_properties {
            let object = new_object(&store, kind, properties, Vec::new());
            results.push(object.to_json(None));
            store.objects.push(object);
        }
        Ok(results)
    });
    match created {
        Ok(results) => (
            StatusCode::CREATED,
            axum::Json(json!({
                "status": "COMPLETE",
                "results": results,
                "startedAt": started_at,
                "completedAt": rfc3339_millis(SystemTime::now()),
            })),
        )
            .into_response(),
        Err(response) => response,
    }
}

pub(super) async fn batch_read(
    State(state): State<Arc<HubspotState>>,
    Path(object_type_name): Path<String>,
    body: Bytes,
) -> Response {
    let started_at = rfc3339_millis(SystemTime::now());
    let read = object_type(&object_type_name).and_then(|kind| {
        let request = parse_json(&body)?;
        let inputs = batch_inputs(&request)?;
        let only: Option<Vec<String>> =
            request
                .get("properties")
                .and_then(Value::as_array)
                .map(|p| {
                    p.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                });
        let store = lock(&state.store);
        let mut results = Vec::new();
        let mut missing = Vec::new();
        for input in inputs {
            let id = match input.get("id") {
                Some(Value::String(id)) => id.clone(),
                Some(other) => other.to_string(),
                None => {
                    return Err(validation_error(
                        "Invalid input JSON: each input needs an \"id\"",
                    ));
                }
            };
            match find(&store, kind, &id) {
                Some(index) => results.push(store.objects[index].read_json(only.as_deref())),
                None => missing.push(id),
            }
        }
        Ok((kind, results, missing))
    });
    let (kind, results, missing) = match read {
        Ok(read) => read,
        Err(response) => return response,
    };
    let mut answer = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": started_at,
        "completedAt": rfc3339_millis(SystemTime::now()),
    });
    if missing.is_empty() {
        return axum::Json(answer).into_response();
    }
    let singular = match kind {
        ObjectType::Deals => "DEAL",
        ObjectType::Companies => "COMPANY",
    };
    if let Some(object) = answer.as_object_mut() {
        object.insert("numErrors".into(), json!(1));
        object.insert(
            "errors".into(),
            json!([{
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": format!(
                    "Could not get some {singular} objects, they may be deleted or not exist. \
                     Check that ids are valid."
                ),
                "context": { "ids": missing },
            }]),
        );
    }
    (StatusCode::MULTI_STATUS, axum::Json(answer)).into_response()
}
