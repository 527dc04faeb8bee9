//! `composite`: up to 25 subrequests in one call.

use junction_sdk::http::{Request, Response};
use junction_sdk::{Context, Error, JsonSchema, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api::{ApiError, data_url, failure, send};

/// Input of `composite`: the body of Salesforce's `/composite`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub(crate) struct Composite {
    /// When true, a failing subrequest rolls back all of them, and the call
    /// fails with that subrequest's error. Salesforce's default is false.
    #[serde(rename = "allOrNone", default)]
    pub(crate) all_or_none: bool,
    /// The subrequests, run in order.
    #[serde(rename = "compositeRequest")]
    pub(crate) composite_request: Vec<Subrequest>,
}

/// One subrequest of `composite`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub(crate) struct Subrequest {
    /// `GET`, `POST`, `PATCH` or `DELETE`.
    pub(crate) method: String,
    /// The resource, e.g. `/services/data/v60.0/sobjects/Account`, or
    /// relative to the API version: `sobjects/Account`. May refer to earlier
    /// results as `@{referenceId.field}`.
    pub(crate) url: String,
    /// Names this subrequest's result for later references.
    #[serde(rename = "referenceId")]
    pub(crate) reference_id: String,
    /// The request body, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) body: Option<Value>,
}

/// Output of `composite`: Salesforce's answer.
#[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct CompositeResult {
    /// One response per subrequest, in order.
    #[serde(rename = "compositeResponse")]
    pub(crate) composite_response: Vec<SubResponse>,
}

/// The response to one subrequest.
#[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct SubResponse {
    /// The response body: a result object, or an error array.
    pub(crate) body: Value,
    /// Response headers, e.g. `Location`.
    #[serde(rename = "httpHeaders", default)]
    pub(crate) http_headers: Map<String, Value>,
    /// The response status.
    #[serde(rename = "httpStatusCode")]
    pub(crate) http_status_code: u16,
    /// The subrequest's `referenceId`.
    #[serde(rename = "referenceId")]
    pub(crate) reference_id: String,
}

pub(crate) fn composite(ctx: &Context, mut input: Composite) -> Result<CompositeResult> {
    let base = data_url(ctx)?;
    let prefix = &base[base.find("/services/").unwrap_or(0)..];
    for sub in &mut input.composite_request {
        if sub.reference_id.is_empty() {
            return Err(Error::InvalidInput(
                "every subrequest needs a `referenceId`".into(),
            ));
        }
        if !sub.url.starts_with("/services/") {
            sub.url = format!("{prefix}/{}", sub.url.trim_start_matches('/'));
        }
    }
    let url = format!("{base}/composite");
    let result: CompositeResult = send(Request::post(url).json(&input)?)?.json()?;
    if input.all_or_none {
        let failed = |halted_too: bool| {
            result.composite_response.iter().find(|r| {
                r.http_status_code >= 400
                    && (halted_too || !errors_of(&r.body).iter().all(|e| e.error_code == HALTED))
            })
        };
        if let Some(sub) = failed(false).or_else(|| failed(true)) {
            let response = Response::new(sub.http_status_code, &[], sub.body.to_string());
            return Err(prefixed(failure(response), &sub.reference_id));
        }
    }
    Ok(result)
}

pub(crate) const HALTED: &str = "PROCESSING_HALTED";

pub(crate) fn errors_of(body: &Value) -> Vec<ApiError> {
    serde_json::from_value(body.clone()).unwrap_or_default()
}

/// `error` with its message saying which subrequest failed.
pub(crate) fn prefixed(error: Error, reference_id: &str) -> Error {
    let say = |m: String| format!("subrequest `{reference_id}`: {m}");
    match error {
        Error::InvalidInput(m) => Error::InvalidInput(say(m)),
        Error::Unauthorized(m) => Error::Unauthorized(say(m)),
        Error::NotFound(m) => Error::NotFound(say(m)),
        Error::Conflict(m) => Error::Conflict(say(m)),
        Error::Unavailable(m) => Error::Unavailable(say(m)),
        Error::Internal(m) => Error::Internal(say(m)),
        limited @ Error::RateLimited { .. } => limited,
    }
}
