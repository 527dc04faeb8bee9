//! Signing a contract, and the signed `contract.signed` webhook it sends.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::server::{FieldError, hmac_sha256, lock};

use super::errors::{invalid, not_found};
use super::*;

/// Why a contract could not be signed.
pub(super) enum SignError {
    NotFound,
    Refused(FieldError),
}

impl std::fmt::Display for SignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignError::NotFound => f.write_str("there is no such contract"),
            SignError::Refused(e) => write!(f, "{} {}", e.field, e.message),
        }
    }
}

/// Completes contract `id`; the first signing queues the webhook.
pub(super) fn sign_contract(state: &ContractState, id: &str) -> Result<Value, SignError> {
    let mut store = lock(&state.store);
    let Some(contract) = store.iter_mut().find(|c| c.contract_id == id) else {
        return Err(SignError::NotFound);
    };
    CONTRACTS
        .check("status", &contract.status, "completed")
        .map_err(SignError::Refused)?;
    if contract.status == "completed" {
        return Ok(contract.to_json());
    }
    let at = now();
    contract.set_status("completed", &at);
    let json = contract.to_json();
    let body = json!({
        "event": SIGNED_EVENT,
        "apiVersion": "v2.1",
        "uri": format!("{API_PATH}/contracts/{id}"),
        "configurationId": CONFIGURATION_ID,
        "generatedDateTime": at,
        "data": {
            "accountId": ACCOUNT_ID,
            "contractId": contract.contract_id,
            "externalReference": contract.external_reference,
            "contractSummary": json,
        },
    });
    state
        .webhooks
        .send(SIGNED_EVENT, body.to_string(), |secret, body| {
            vec![
                ("X-Authorization-Digest", "HMACSHA256".to_owned()),
                ("X-DocuSign-AccountId", ACCOUNT_ID.to_owned()),
                (SIGNATURE_HEADER, signature(secret, body)),
            ]
        });
    Ok(json)
}

/// The `X-DocuSign-Signature-1` value of `body` under `secret`: the base64 HMAC-SHA256.
pub fn signature(secret: &str, body: &[u8]) -> String {
    BASE64.encode(hmac_sha256(secret.as_bytes(), body))
}

pub(super) async fn sign(
    State(state): State<Arc<ContractState>>,
    Path((_account, id)): Path<(String, String)>,
) -> Response {
    match sign_contract(&state, &id) {
        Ok(json) => axum::Json(json).into_response(),
        Err(SignError::NotFound) => not_found(),
        Err(SignError::Refused(e)) => invalid(e),
    }
}
