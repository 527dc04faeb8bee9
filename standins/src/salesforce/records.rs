//! Records: the sObject types the stand-in knows, their ids and validation, and create, read,
//! update and upsert by external id.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use crate::server::rfc3339_millis;

use super::reply::{Reply, not_found};
use super::*;

/// Salesforce's timestamp format, `2024-05-01T09:30:00.000+0000`.
fn salesforce_time() -> String {
    let text = rfc3339_millis(SystemTime::now());
    format!("{}+0000", text.trim_end_matches('Z'))
}

/// The key prefix of `kind`'s ids, or `None` when the stand-in does not know the type.
pub(super) fn key_prefix(kind: &str) -> Option<&'static str> {
    match kind {
        "Account" => Some("001"),
        "Contact" => Some("003"),
        "Opportunity" => Some("006"),
        "Lead" => Some("00Q"),
        custom if custom.ends_with("__c") && custom.len() > 3 => Some("a01"),
        _ => None,
    }
}

fn required_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Account" => &["Name"],
        "Contact" => &["LastName"],
        "Opportunity" => &["Name", "StageName", "CloseDate"],
        "Lead" => &["LastName", "Company"],
        _ => &[],
    }
}

fn is_external_id_field(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with("external_id__c")
}

/// An 18-character record id: prefix, a fixed pod, a counter, and the case-safe suffix.
pub(super) fn new_id(prefix: &str) -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let id15 = format!("{prefix}5g{n:010}");
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let mut suffix = String::with_capacity(3);
    for chunk in id15.as_bytes().chunks(5) {
        let bits = chunk
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_ascii_uppercase())
            .fold(0usize, |acc, (i, _)| acc | (1 << i));
        suffix.push(char::from(alphabet[bits]));
    }
    id15 + &suffix
}

fn parse_fields(body: &[u8]) -> Result<Map<String, Value>, Reply> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut fields)) => {
            fields.remove("attributes");
            fields.remove("Id");
            Ok(fields)
        }
        Ok(_) => Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of sObject from a value that is not an object",
            &[],
        )),
        Err(error) => Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            &format!(
                "Unexpected character at [line:{},column:{}]",
                error.line(),
                error.column()
            ),
            &[],
        )),
    }
}

fn known_type(kind: &str) -> Result<&'static str, Reply> {
    key_prefix(kind).ok_or_else(not_found)
}

/// Checks a record's fields after a create or update: required fields set, external ids unique.
fn validate(
    store: &Store,
    kind: &str,
    fields: &Map<String, Value>,
    own_id: Option<&str>,
) -> Result<(), Reply> {
    let missing: Vec<&str> = required_fields(kind)
        .iter()
        .copied()
        .filter(|name| match fields.get(*name) {
            None | Some(Value::Null) => true,
            Some(Value::String(text)) => text.trim().is_empty(),
            Some(_) => false,
        })
        .collect();
    if !missing.is_empty() {
        return Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_FIELD_MISSING",
            &format!("Required fields are missing: [{}]", missing.join(", ")),
            &missing,
        ));
    }
    for (name, value) in fields
        .iter()
        .filter(|(n, v)| is_external_id_field(n) && !v.is_null())
    {
        let clash = store.records.iter().find(|r| {
            r.kind == kind && Some(r.id.as_str()) != own_id && r.fields.get(name) == Some(value)
        });
        if let Some(clash) = clash {
            return Err(Reply::error(
                StatusCode::BAD_REQUEST,
                "DUPLICATE_VALUE",
                &format!(
                    "duplicate value found: {name} duplicates value on record with id: {}",
                    clash.id
                ),
                &[],
            ));
        }
    }
    Ok(())
}

fn insert(store: &mut Store, kind: &str, fields: Map<String, Value>) -> Result<String, Reply> {
    let prefix = known_type(kind)?;
    validate(store, kind, &fields, None)?;
    let now = salesforce_time();
    let id = new_id(prefix);
    store.records.push(SObject {
        kind: kind.to_owned(),
        id: id.clone(),
        fields,
        created: now.clone(),
        modified: now,
    });
    Ok(id)
}

fn created(context: &Context<'_>, kind: &str, id: &str, upserted: bool) -> Reply {
    let mut body = json!({ "id": id, "success": true, "errors": [] });
    if upserted && let Some(object) = body.as_object_mut() {
        object.insert("created".into(), json!(true));
    }
    Reply {
        status: StatusCode::CREATED,
        body: Some(body),
        location: Some(format!(
            "/services/data/{}/sobjects/{kind}/{id}",
            context.version
        )),
    }
}

pub(super) fn create(store: &mut Store, context: &Context<'_>, kind: &str, body: &[u8]) -> Reply {
    let result = parse_fields(body).and_then(|fields| insert(store, kind, fields));
    match result {
        Ok(id) => created(context, kind, &id, false),
        Err(reply) => reply,
    }
}

/// The index of the record `kind`/`id`, the id given with 15 or 18 characters.
fn find(store: &Store, kind: &str, id: &str) -> Option<usize> {
    store
        .records
        .iter()
        .position(|r| r.kind == kind && (r.id == id || (id.len() == 15 && r.id.starts_with(id))))
}

pub(super) fn get_record(store: &Store, context: &Context<'_>, kind: &str, id: &str) -> Reply {
    match find(store, kind, id) {
        Some(index) => Reply::ok(store.records[index].to_json(context.version)),
        None => not_found(),
    }
}

fn apply_update(store: &mut Store, index: usize, fields: Map<String, Value>) -> Result<(), Reply> {
    let record = &store.records[index];
    let mut merged = record.fields.clone();
    merged.extend(fields);
    validate(
        store,
        &record.kind.clone(),
        &merged,
        Some(&record.id.clone()),
    )?;
    let record = &mut store.records[index];
    record.fields = merged;
    record.modified = salesforce_time();
    Ok(())
}

pub(super) fn update(store: &mut Store, kind: &str, id: &str, body: &[u8]) -> Reply {
    let result = known_type(kind).and_then(|_| {
        let fields = parse_fields(body)?;
        let index = find(store, kind, id).ok_or_else(not_found)?;
        apply_update(store, index, fields)
    });
    match result {
        Ok(()) => Reply::no_content(),
        Err(reply) => reply,
    }
}

pub(super) fn upsert(
    store: &mut Store,
    context: &Context<'_>,
    kind: &str,
    field: &str,
    value: &str,
    body: &[u8],
) -> Reply {
    let result = known_type(kind).and_then(|_| {
        if field == "Id" {
            let fields = parse_fields(body)?;
            let index = find(store, kind, value).ok_or_else(not_found)?;
            return apply_update(store, index, fields).map(|()| Upserted::Updated(index));
        }
        if !is_external_id_field(field) {
            return Err(Reply::error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                &format!("Provided external ID field does not exist or is not accessible: {field}"),
                &[],
            ));
        }
        let mut fields = parse_fields(body)?;
        fields.insert(field.to_owned(), json!(value));
        let existing = store
            .records
            .iter()
            .position(|r| r.kind == kind && r.fields.get(field) == Some(&json!(value)));
        match existing {
            Some(index) => apply_update(store, index, fields).map(|()| Upserted::Updated(index)),
            None => insert(store, kind, fields).map(Upserted::Created),
        }
    });
    let answer = |status, id: &str, created: bool| Reply {
        status,
        body: Some(json!({ "id": id, "success": true, "errors": [], "created": created })),
        location: None,
    };
    match result {
        Ok(Upserted::Created(id)) => answer(StatusCode::CREATED, &id, true),
        // Since API v46.0 an upsert that updates answers 200 with a body; before, 204.
        Ok(Upserted::Updated(index)) if api_version(context.version) >= 46 => {
            let id = store.records[index].id.clone();
            answer(StatusCode::OK, &id, false)
        }
        Ok(Upserted::Updated(_)) => Reply::no_content(),
        Err(reply) => reply,
    }
}

/// What an upsert did.
enum Upserted {
    /// Made the record with this id.
    Created(String),
    /// Updated the record at this index.
    Updated(usize),
}

/// The major number of an API version such as `v60.0` (0 when it is none).
fn api_version(version: &str) -> u32 {
    version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
