//! Field checks of a record before it is stored, refused with the field NetSuite names.

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::answers::Answer;
use super::*;

/// Checks `fields` (with `existing`, the fields of the record being updated) for `kind`.
pub(super) fn validate(
    store: &Store,
    kind: RecordType,
    fields: &Map<String, Value>,
    existing: Option<&Map<String, Value>>,
) -> Option<Answer> {
    let value = |name: &str| fields.get(name).or_else(|| existing?.get(name));
    if kind == RecordType::Invoice {
        return validate_invoice(store, &value);
    }
    let company_name = value("companyName").and_then(Value::as_str).unwrap_or("");
    if company_name.trim().is_empty() {
        return Some(Answer::error(
            StatusCode::BAD_REQUEST,
            "USER_ERROR",
            "Please enter value(s) for: Company Name",
            Some("companyName"),
        ));
    }
    if kind == RecordType::Job {
        let parent = value("parent").and_then(|p| match p.get("id") {
            Some(Value::String(id)) => id.parse::<u64>().ok(),
            Some(Value::Number(id)) => id.as_u64(),
            _ => None,
        });
        let is_customer = parent.is_some_and(|id| {
            store
                .records
                .iter()
                .any(|r| r.kind == RecordType::Customer && r.id == id)
        });
        if !is_customer {
            return Some(Answer::error(
                StatusCode::BAD_REQUEST,
                "INVALID_KEY_OR_REF",
                "Invalid value for the resource or sub-resource field 'parent'. Provide a valid \
                 value.",
                Some("parent"),
            ));
        }
    }
    None
}

/// An invoice needs `entity` (an existing customer), an optional `job` (an
/// existing job), and `item.items`, each line with `item.id`, a positive
/// `quantity` and a `rate`.
fn validate_invoice<'a>(
    store: &Store,
    value: &impl Fn(&str) -> Option<&'a Value>,
) -> Option<Answer> {
    let refers_to = |field: &str, kind: RecordType| {
        let id = value(field).and_then(|p| match p.get("id") {
            Some(Value::String(id)) => id.parse::<u64>().ok(),
            Some(Value::Number(id)) => id.as_u64(),
            _ => None,
        });
        id.is_some_and(|id| store.records.iter().any(|r| r.kind == kind && r.id == id))
    };
    let invalid_ref = |field: &str| {
        Some(Answer::error(
            StatusCode::BAD_REQUEST,
            "INVALID_KEY_OR_REF",
            &format!(
                "Invalid value for the resource or sub-resource field '{field}'. Provide a valid \
                 value."
            ),
            Some(field),
        ))
    };
    if !refers_to("entity", RecordType::Customer) {
        return invalid_ref("entity");
    }
    if value("job").is_some() && !refers_to("job", RecordType::Job) {
        return invalid_ref("job");
    }
    let lines = value("item")
        .and_then(|i| i.get("items"))
        .and_then(Value::as_array);
    let Some(lines) = lines.filter(|l| !l.is_empty()) else {
        return Some(Answer::error(
            StatusCode::BAD_REQUEST,
            "USER_ERROR",
            "You must enter at least one line item for this transaction.",
            Some("item"),
        ));
    };
    for (n, line) in lines.iter().enumerate() {
        let item = line.get("item").and_then(|i| i.get("id")).is_some();
        let quantity = line
            .get("quantity")
            .and_then(Value::as_f64)
            .is_some_and(|q| q > 0.0);
        let rate = line.get("rate").and_then(Value::as_f64).is_some();
        if !(item && quantity && rate) {
            return Some(Answer::error(
                StatusCode::BAD_REQUEST,
                "USER_ERROR",
                "Please enter value(s) for: Item, Quantity, Rate",
                Some(&format!("item.items[{n}]")),
            ));
        }
    }
    None
}

pub(super) fn duplicate_external_id(
    store: &Store,
    kind: RecordType,
    external_id: &str,
) -> Option<Answer> {
    store
        .records
        .iter()
        .any(|r| r.kind == kind && r.external_id.as_deref() == Some(external_id))
        .then(|| {
            Answer::error(
                StatusCode::BAD_REQUEST,
                "DUP_RCRD",
                &format!(
                    "A {} with external ID '{external_id}' already exists.",
                    kind.name()
                ),
                Some("externalId"),
            )
        })
}
