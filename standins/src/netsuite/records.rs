//! Records: create, read and update of customers, jobs and invoices, by internal id or `eid:`
//! external id.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::server::lock;

use super::answers::{Answer, error};
use super::validation::{duplicate_external_id, validate};
use super::*;

fn unknown_type(name: &str) -> Answer {
    Answer::error(
        StatusCode::NOT_FOUND,
        "INVALID_URL",
        &format!("Record type '{name}' does not exist."),
        None,
    )
}

fn parse_body(body: &Bytes) -> Result<Map<String, Value>, Answer> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) | Err(_) => Err(Answer::error(
            StatusCode::BAD_REQUEST,
            "USER_ERROR",
            "Invalid content in the request body. The body must be a JSON object.",
            None,
        )),
    }
}

pub(super) async fn create(
    State(state): State<Arc<NetsuiteState>>,
    Path(record_type): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    asynchronous::dispatch(&state, &headers, |store| {
        let Some(kind) = RecordType::parse(&record_type) else {
            return unknown_type(&record_type);
        };
        match parse_body(&body) {
            Ok(fields) => insert(store, &state.base_url, kind, fields, None),
            Err(answer) => answer,
        }
    })
}

/// `GET`, `PATCH` and `PUT` on one record.
pub(super) async fn one(
    State(state): State<Arc<NetsuiteState>>,
    Path((record_type, reference)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(kind) = RecordType::parse(&record_type) else {
        return unknown_type(&record_type).into_response();
    };
    if method == Method::GET {
        let store = lock(&state.store);
        return match find(&store, kind, &reference) {
            Some(index) => {
                axum::Json(store.records[index].to_json(&state.base_url)).into_response()
            }
            None => nonexistent().into_response(),
        };
    }
    if method != Method::PATCH && method != Method::PUT {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "INVALID_URL",
            &format!("The {method} method is not allowed on this resource."),
        );
    }
    asynchronous::dispatch(&state, &headers, |store| {
        let fields = match parse_body(&body) {
            Ok(fields) => fields,
            Err(answer) => return answer,
        };
        match (find(store, kind, &reference), method == Method::PUT) {
            (Some(index), _) => update(store, &state.base_url, index, fields),
            (None, true) => match reference.strip_prefix("eid:") {
                Some(external_id) => insert(
                    store,
                    &state.base_url,
                    kind,
                    fields,
                    Some(external_id.to_owned()),
                ),
                None => Answer::error(
                    StatusCode::BAD_REQUEST,
                    "USER_ERROR",
                    "Upserts address the record by external id: PUT /{type}/eid:{externalId}.",
                    None,
                ),
            },
            (None, false) => nonexistent(),
        }
    })
}

fn nonexistent() -> Answer {
    Answer::error(
        StatusCode::NOT_FOUND,
        "NONEXISTENT_ID",
        "The record instance does not exist. Provide a valid record instance ID.",
        None,
    )
}

/// The index of the record `reference` (`1001` or `eid:X`) names.
fn find(store: &Store, kind: RecordType, reference: &str) -> Option<usize> {
    store.records.iter().position(|r| {
        r.kind == kind
            && match reference.strip_prefix("eid:") {
                Some(external_id) => r.external_id.as_deref() == Some(external_id),
                None => reference.parse::<u64>().is_ok_and(|id| id == r.id),
            }
    })
}

fn insert(
    store: &mut Store,
    base_url: &str,
    kind: RecordType,
    mut fields: Map<String, Value>,
    external_id: Option<String>,
) -> Answer {
    let body_external_id = match fields.remove("externalId") {
        Some(Value::String(id)) => Some(id),
        _ => None,
    };
    let external_id = external_id.or(body_external_id);
    fields.remove("id");
    if let Some(answer) = validate(store, kind, &fields, None) {
        return answer;
    }
    if let Some(answer) = external_id
        .as_deref()
        .and_then(|e| duplicate_external_id(store, kind, e))
    {
        return answer;
    }
    let id = kind.first_id() + store.records.iter().filter(|r| r.kind == kind).count() as u64;
    let record = Record {
        kind,
        id,
        external_id,
        fields,
    };
    let location = record.url(base_url);
    store.records.push(record);
    Answer::no_content(location)
}

fn update(
    store: &mut Store,
    base_url: &str,
    index: usize,
    mut fields: Map<String, Value>,
) -> Answer {
    fields.remove("id");
    let kind = store.records[index].kind;
    let new_external_id = match fields.remove("externalId") {
        Some(Value::String(id)) if store.records[index].external_id.as_ref() != Some(&id) => {
            Some(id)
        }
        _ => None,
    };
    if let Some(answer) = validate(store, kind, &fields, Some(&store.records[index].fields)) {
        return answer;
    }
    if let Some(answer) = new_external_id
        .as_deref()
        .and_then(|e| duplicate_external_id(store, kind, e))
    {
        return answer;
    }
    let record = &mut store.records[index];
    if new_external_id.is_some() {
        record.external_id = new_external_id;
    }
    for (name, value) in fields {
        record.fields.insert(name, value);
    }
    Answer::no_content(record.url(base_url))
}
