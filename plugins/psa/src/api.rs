//! Requests to the PSA's REST API: URLs, sending, idempotency keys, the error
//! cases of its answers, and its list pages.

use junction_sdk::http::{Request, Response, encode_component};
use junction_sdk::{Context, Error, Result, rest};
use serde::Deserialize;

use crate::API_PATH;

pub(crate) fn url(ctx: &Context, path: &str) -> Result<String> {
    let base = ctx.require_config("base_url")?;
    Ok(format!("{}{API_PATH}{path}", base.trim_end_matches('/')))
}

/// `value` as one path segment; an empty id is the caller's mistake.
pub(crate) fn segment(field: &str, value: &str) -> Result<String> {
    if value.trim().is_empty() {
        return Err(Error::InvalidInput(format!("`{field}` must not be empty")));
    }
    Ok(encode_component(value.trim()))
}

/// Sends `request` and passes a 2xx response through; every other status
/// becomes the error case the PSA's answer says.
pub(crate) fn send(request: Request) -> Result<Response> {
    let response = request.header("accept", "application/json").send()?;
    if response.is_success() {
        return Ok(response);
    }
    Err(failure(response))
}

/// Sends a create with the idempotency key `key`, when there is one.
pub(crate) fn create(request: Request, key: Option<String>) -> Result<Response> {
    match key {
        Some(key) => send(request.header("Idempotency-Key", key)),
        None => send(request),
    }
}

/// The PSA's error body.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub(crate) errors: Vec<ErrorItem>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorItem {
    #[serde(default, rename = "type")]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) message: String,
    #[serde(default)]
    pub(crate) field: Option<String>,
}

/// The error case of a failed request: the status decides the case, the
/// PSA's body the message.
pub(crate) fn failure(response: Response) -> Error {
    let body: ErrorBody = serde_json::from_slice(&response.body).unwrap_or_default();
    if body.errors.is_empty() {
        return rest::refusal(&response, &response.text());
    }
    let described: Vec<String> = body
        .errors
        .iter()
        .map(|e| match &e.field {
            Some(field) => format!("`{field}`: {} ({})", e.message, e.kind),
            None => format!("{} ({})", e.message, e.kind),
        })
        .collect();
    let message = format!("the PSA refused the request: {}", described.join("; "));
    rest::refusal(&response, &message)
}

/// A page of a PSA list.
#[derive(Debug, Deserialize)]
pub(crate) struct PsaPage<T> {
    pub(crate) results: Vec<T>,
    pub(crate) meta: PageMeta,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PageMeta {
    pub(crate) count: u64,
    pub(crate) page_count: u64,
    pub(crate) page_number: u64,
}

impl PageMeta {
    pub(crate) fn next_page(&self) -> Option<u64> {
        (self.page_number < self.page_count).then_some(self.page_number + 1)
    }
}
