//! Requests to the Salesforce REST API: the data URL, the names and ids that
//! go into it, sending, the error cases of its error arrays, and the API
//! usage warning.

use junction_sdk::http::{Request, Response};
use junction_sdk::rest::refusal;
use junction_sdk::{Context, Error, Result};
use serde::Deserialize;

use crate::{DAILY_LIMIT_WAIT_MS, DEFAULT_API_VERSION};

/// `{instance_url}/services/data/{version}`.
pub(crate) fn data_url(ctx: &Context) -> Result<String> {
    let instance = ctx.require_config("instance_url")?;
    let version = ctx
        .config("api_version")
        .unwrap_or_else(|| DEFAULT_API_VERSION.into());
    let valid = version
        .strip_prefix('v')
        .and_then(|v| v.split_once('.'))
        .is_some_and(|(major, minor)| {
            !major.is_empty()
                && !minor.is_empty()
                && major
                    .bytes()
                    .chain(minor.bytes())
                    .all(|b| b.is_ascii_digit())
        });
    if !valid {
        return Err(Error::InvalidInput(format!(
            "setting `api_version` must look like `v60.0`, not `{version}`"
        )));
    }
    Ok(format!(
        "{}/services/data/{version}",
        instance.trim_end_matches('/')
    ))
}

/// Refuses a name that is not an API name (`Account`, `External_Id__c`):
/// names go into paths and SOQL, so nothing else may pass.
pub(crate) fn api_name<'a>(what: &str, name: &'a str) -> Result<&'a str> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(name)
    } else {
        Err(Error::InvalidInput(format!(
            "`{what}` must be a Salesforce API name such as `Account` or `External_Id__c`, not `{name}`"
        )))
    }
}

/// Refuses anything but a 15- or 18-character record id.
pub(crate) fn record_id(id: &str) -> Result<&str> {
    if matches!(id.len(), 15 | 18) && id.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err(Error::InvalidInput(format!(
            "`id` must be a 15- or 18-character Salesforce id, not `{id}`"
        )))
    }
}

/// Sends `request` and passes a 2xx response through; every other status
/// becomes the error case its Salesforce error array says.
pub(crate) fn send(request: Request) -> Result<Response> {
    let response = request.header("accept", "application/json").send()?;
    warn_near_limit(&response);
    if response.is_success() {
        return Ok(response);
    }
    Err(failure(response))
}

/// One entry of Salesforce's error array.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ApiError {
    #[serde(default)]
    pub(crate) message: String,
    #[serde(default, rename = "errorCode")]
    pub(crate) error_code: String,
    #[serde(default)]
    pub(crate) fields: Vec<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error_code)?;
        if !self.fields.is_empty() {
            write!(f, " on {}", self.fields.join(", "))?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The error case of a failed request (or composite subrequest): what its
/// Salesforce error array says, or the SDK's status mapping when the body is
/// not one.
pub(crate) fn failure(response: Response) -> Error {
    let errors: Vec<ApiError> = serde_json::from_slice(&response.body).unwrap_or_default();
    let status = response.status;
    let has = |codes: &[&str]| {
        errors
            .iter()
            .any(|e| codes.contains(&e.error_code.as_str()))
    };
    if has(&["REQUEST_LIMIT_EXCEEDED"]) || status == 429 {
        return Error::RateLimited {
            retry_after_ms: response.retry_after_ms().unwrap_or(DAILY_LIMIT_WAIT_MS),
        };
    }
    if errors.is_empty() {
        return match response.ok() {
            Ok(_) => Error::Internal(format!("Salesforce answered {status} without a body")),
            Err(error) => error,
        };
    }
    let described: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let message = format!("Salesforce says {}", described.join("; "));
    if has(&["DUPLICATE_VALUE", "DUPLICATES_DETECTED"]) {
        return Error::Conflict(format!("status {status}: {message}"));
    }
    refusal(&response, &message)
}

/// Logs a warning when `Sforce-Limit-Info: api-usage=N/M` says the org has
/// used 90% of its API requests.
pub(crate) fn warn_near_limit(response: &Response) {
    if let Some((used, max)) = response.header("sforce-limit-info").and_then(api_usage)
        && used.saturating_mul(10) >= max.saturating_mul(9)
    {
        junction_sdk::log::warn(format!(
            "Salesforce API usage is at {used} of {max} requests"
        ));
    }
}

/// `api-usage=25/5000` (possibly among other comma-separated entries).
pub(crate) fn api_usage(header: &str) -> Option<(u64, u64)> {
    let usage = header
        .split(',')
        .find_map(|part| part.trim().strip_prefix("api-usage="))?;
    let (used, max) = usage.split_once('/')?;
    Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
}
