//! Contracts: create, list with string page counters, read and update.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::server::{
    FieldError, json_object, lock, only_known_fields, optional_money, optional_text, query_number,
    required_text,
};

use super::errors::{invalid, not_found};
use super::*;

fn signers(object: &Map<String, Value>) -> Result<Vec<Signer>, FieldError> {
    let Some(list) = object.get("signers").and_then(Value::as_array) else {
        return Err(FieldError::new(
            "signers",
            "is required: a list of {\"name\", \"email\"}",
        ));
    };
    if list.is_empty() {
        return Err(FieldError::new("signers", "needs at least one signer"));
    }
    list.iter()
        .enumerate()
        .map(|(i, signer)| {
            let field = |name: &str| format!("signers[{i}].{name}");
            let Some(signer) = signer.as_object() else {
                return Err(FieldError::new(
                    &format!("signers[{i}]"),
                    "must be an object",
                ));
            };
            only_known_fields(signer, &["name", "email"])
                .map_err(|e| FieldError::new(&field(&e.field), e.message))?;
            let text = |name: &str| {
                required_text(signer, name).map_err(|e| FieldError::new(&field(name), e.message))
            };
            let (name, email) = (text("name")?, text("email")?);
            if !email.contains('@') {
                return Err(FieldError::new(
                    &field("email"),
                    format!("{email:?} is not an e-mail address"),
                ));
            }
            Ok(Signer {
                recipient_id: (i + 1).to_string(),
                name,
                email,
                status: "created".into(),
                signed_date_time: None,
            })
        })
        .collect()
}

struct ContractInput {
    pub(super) title: String,
    pub(super) external_reference: Option<String>,
    pub(super) signers: Vec<Signer>,
    pub(super) value: Option<Value>,
    pub(super) status: String,
}

fn contract_input(body: &Bytes) -> Result<ContractInput, FieldError> {
    let object = json_object(body)?;
    only_known_fields(
        &object,
        &["title", "externalReference", "signers", "value", "status"],
    )?;
    let status = optional_text(&object, "status")?.unwrap_or_else(|| "created".into());
    if status != "created" && status != "sent" {
        return Err(FieldError::new(
            "status",
            format!("a contract is created as created or sent, not {status}"),
        ));
    }
    Ok(ContractInput {
        title: required_text(&object, "title")?,
        external_reference: optional_text(&object, "externalReference")?,
        signers: signers(&object)?,
        value: optional_money(&object, "value")?,
        status,
    })
}

pub(super) async fn create(State(state): State<Arc<ContractState>>, body: Bytes) -> Response {
    let input = match contract_input(&body) {
        Ok(input) => input,
        Err(e) => return invalid(e),
    };
    let mut store = lock(&state.store);
    let at = now();
    let id = format!("c0a80f7e-1d2b-4c3a-9e8f-{:012x}", store.len() + 1);
    let mut contract = Contract {
        uri: format!("/contracts/{id}"),
        contract_id: id,
        title: input.title,
        external_reference: input.external_reference,
        status: "created".into(),
        signers: input.signers,
        value: input.value,
        created_date_time: at.clone(),
        sent_date_time: None,
        completed_date_time: None,
        voided_date_time: None,
        voided_reason: None,
        status_changed_date_time: at.clone(),
    };
    if input.status == "sent" {
        contract.set_status("sent", &at);
    }
    let summary = json!({
        "contractId": contract.contract_id,
        "uri": contract.uri,
        "status": contract.status,
        "statusDateTime": at,
    });
    store.push(contract);
    (StatusCode::CREATED, axum::Json(summary)).into_response()
}

pub(super) async fn list(
    State(state): State<Arc<ContractState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let paging = query_number(&query, "start_position", 0).and_then(|start| {
        let count = query_number(&query, "count", 1)?.unwrap_or(DEFAULT_PAGE_SIZE);
        if count > MAX_PAGE_SIZE {
            return Err(FieldError::new(
                "count",
                format!("must be at most {MAX_PAGE_SIZE}"),
            ));
        }
        Ok((start.unwrap_or(0), count))
    });
    let (start, count) = match paging {
        Ok(paging) => paging,
        Err(e) => return invalid(e),
    };
    let store = lock(&state.store);
    let matching: Vec<&Contract> = store
        .iter()
        .filter(|c| query.get("status").is_none_or(|s| *s == c.status))
        .filter(|c| {
            query
                .get("external_reference")
                .is_none_or(|r| Some(r.as_str()) == c.external_reference.as_deref())
        })
        .collect();
    let total = matching.len() as u64;
    let skip = usize::try_from(start).unwrap_or(usize::MAX);
    let take = usize::try_from(count).unwrap_or(usize::MAX);
    let contracts: Vec<Value> = matching
        .iter()
        .skip(skip)
        .take(take)
        .map(|c| c.to_json())
        .collect();
    let size = contracts.len() as u64;
    let next = start + size;
    let mut next_uri = String::new();
    if size > 0 && next < total {
        next_uri = format!("/contracts?start_position={next}&count={count}");
        for name in ["status", "external_reference"] {
            if let Some(value) = query.get(name) {
                next_uri.push_str(&format!("&{name}={}", url_encode(value)));
            }
        }
    }
    axum::Json(json!({
        "contracts": contracts,
        "resultSetSize": size.to_string(),
        "startPosition": start.to_string(),
        "endPosition": (start + size).saturating_sub(1).to_string(),
        "totalSetSize": total.to_string(),
        "nextUri": next_uri,
    }))
    .into_response()
}

/// Percent-encodes everything but the unreserved characters of RFC 3986.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(super) async fn get_one(
    State(state): State<Arc<ContractState>>,
    Path((_account, id)): Path<(String, String)>,
) -> Response {
    let store = lock(&state.store);
    match store.iter().find(|c| c.contract_id == id) {
        Some(contract) => axum::Json(contract.to_json()).into_response(),
        None => not_found(),
    }
}

fn update_input(body: &Bytes) -> Result<(String, Option<String>), FieldError> {
    let object = json_object(body)?;
    only_known_fields(&object, &["status", "voidedReason"])?;
    let status = required_text(&object, "status")?;
    let reason = optional_text(&object, "voidedReason")?;
    match status.as_str() {
        "sent" if reason.is_some() => Err(FieldError::new(
            "voidedReason",
            "is only for \"status\": \"voided\"",
        )),
        "voided" if reason.is_none() => Err(FieldError::new(
            "voidedReason",
            "is required to void a contract",
        )),
        "sent" | "voided" => Ok((status, reason)),
        "completed" => Err(FieldError::new(
            "status",
            "a contract is completed by its signers signing (POST .../sign), not by PUT",
        )),
        other => Err(FieldError::new(
            "status",
            format!("{other:?} cannot be set; set sent or voided"),
        )),
    }
}

pub(super) async fn update(
    State(state): State<Arc<ContractState>>,
    Path((_account, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (status, reason) = match update_input(&body) {
        Ok(input) => input,
        Err(e) => return invalid(e),
    };
    let mut store = lock(&state.store);
    let Some(contract) = store.iter_mut().find(|c| c.contract_id == id) else {
        return not_found();
    };
    if let Err(e) = CONTRACTS.check("status", &contract.status, &status) {
        return invalid(e);
    }
    if contract.status != status {
        contract.set_status(&status, &now());
        contract.voided_reason = reason;
    }
    axum::Json(contract.to_json()).into_response()
}
