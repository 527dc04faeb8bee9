//! Requests to the HubSpot API: the connection's settings, the object kinds
//! and their URLs, sending, and the error cases of HubSpot's error bodies.

use junction_sdk::http::{Request, Response};
use junction_sdk::rest::refusal;
use junction_sdk::{Context, Error, Result};
use serde::Deserialize;
use serde_json::{Map, Value};

pub(crate) fn base_url(ctx: &Context) -> String {
    ctx.config("base_url")
        .unwrap_or_else(|| "https://api.hubapi.com".into())
        .trim_end_matches('/')
        .to_owned()
}

pub(crate) fn closed_won_stage(ctx: &Context) -> String {
    ctx.config("closed_won_stage")
        .unwrap_or_else(|| "closedwon".into())
}

/// A cursor or id as it may go into a URL: HubSpot's are digits and letters.
pub(crate) fn cursor_value(text: &str) -> Result<&str> {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Ok(text)
    } else {
        Err(Error::InvalidInput(format!(
            "cursor `{text}` is not one this connector returned"
        )))
    }
}

/// The object types this connector reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Deals,
    Companies,
}

impl Kind {
    pub(crate) fn path(self) -> &'static str {
        match self {
            Kind::Deals => "deals",
            Kind::Companies => "companies",
        }
    }

    /// The properties a stream reads.
    pub(crate) fn properties(self) -> Vec<String> {
        let names: &[&str] = match self {
            Kind::Deals => &[
                "dealname",
                "dealstage",
                "amount",
                "closedate",
                "pipeline",
                "deal_currency_code",
                "hs_lastmodifieddate",
            ],
            Kind::Companies => &[
                "name",
                "domain",
                "industry",
                "city",
                "country",
                "hs_lastmodifieddate",
            ],
        };
        names.iter().map(|n| (*n).to_owned()).collect()
    }
}

/// Sends `request` and passes a 2xx response through; every other status
/// becomes the error case HubSpot's error body says.
pub(crate) fn send(request: Request) -> Result<Response> {
    let response = request.header("accept", "application/json").send()?;
    if response.is_success() {
        return Ok(response);
    }
    Err(failure(response))
}

/// HubSpot's error body.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub(crate) message: String,
    #[serde(default)]
    pub(crate) category: String,
    /// Per-property details some endpoints add.
    #[serde(default)]
    pub(crate) errors: Vec<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub(crate) context: Map<String, Value>,
}

/// The error case of a failed request, from its status and HubSpot's body.
pub(crate) fn failure(response: Response) -> Error {
    let status = response.status;
    if status == 429 {
        let interval = response
            .header("x-hubspot-ratelimit-interval-milliseconds")
            .and_then(|v| v.trim().parse().ok());
        return Error::RateLimited {
            retry_after_ms: response.retry_after_ms().or(interval).unwrap_or(1000),
        };
    }
    let Ok(body) = serde_json::from_slice::<ErrorBody>(&response.body) else {
        return match response.ok() {
            Ok(_) => Error::Internal(format!("HubSpot answered {status}")),
            Err(error) => error,
        };
    };
    let fields = refused_properties(&body);
    let message = if fields.is_empty() {
        format!("HubSpot says ({}): {}", body.category, body.message)
    } else {
        format!(
            "HubSpot refused {} ({}): {}",
            fields.join(", "),
            body.category,
            body.message
        )
    };
    refusal(&response, &message)
}

/// The properties a validation error names: in `errors[].context.propertyName`,
/// or in the JSON list HubSpot embeds in the message
/// (`Property values were not valid: [{..., "name": "dealname"}]`).
pub(crate) fn refused_properties(body: &ErrorBody) -> Vec<String> {
    let mut names: Vec<String> = body
        .errors
        .iter()
        .flat_map(|e| e.context.get("propertyName").and_then(Value::as_array))
        .flatten()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    if let Some(start) = body.message.find('[')
        && let Ok(Value::Array(items)) = serde_json::from_str::<Value>(&body.message[start..])
    {
        names.extend(
            items
                .iter()
                .filter_map(|i| i.get("name")?.as_str().map(str::to_owned)),
        );
    }
    names.dedup();
    names
}
