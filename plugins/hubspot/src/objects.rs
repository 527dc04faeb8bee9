//! Single objects and batches: `get-deal`, `update-deal`, `get-company` and
//! the batch reads.

use junction_sdk::http::Request;
use junction_sdk::{Context, Error, JsonSchema, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api::{Kind, base_url, send};

/// Input of `get-deal` and `get-company`.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct GetObject {
    /// The object's id, e.g. `9876543201`.
    pub(crate) id: String,
    /// The properties to read; HubSpot's default set when absent.
    #[serde(default)]
    pub(crate) properties: Option<Vec<String>>,
    /// Object types whose associated ids to return too, e.g. `["companies"]`
    /// for a deal's companies.
    #[serde(default)]
    pub(crate) associations: Option<Vec<String>>,
}

/// A CRM object as HubSpot returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct CrmObject {
    /// The object's id.
    pub(crate) id: String,
    /// Its properties; HubSpot sends every value as a string (or null).
    pub(crate) properties: Map<String, Value>,
    /// When it was created, RFC 3339.
    #[serde(rename = "createdAt")]
    pub(crate) created_at: String,
    /// When it last changed, RFC 3339.
    #[serde(rename = "updatedAt")]
    pub(crate) updated_at: String,
    /// Whether it is archived.
    #[serde(default)]
    pub(crate) archived: bool,
    /// The associated objects asked for with `associations`, by type:
    /// `{"companies": {"results": [{"id", "type"}]}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) associations: Option<Map<String, Value>>,
}

/// `names` joined for a query string; refuses a name that could change the
/// URL it goes into. `what` is the input field, for the message.
pub(crate) fn name_list(what: &str, names: &[String]) -> Result<String> {
    for name in names {
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Error::InvalidInput(format!(
                "`{what}` holds `{name}`, which is not a HubSpot name"
            )));
        }
    }
    Ok(names.join(","))
}

/// The URL of one object; refuses an id that is not one.
pub(crate) fn object_url(ctx: &Context, kind: Kind, id: &str) -> Result<String> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::InvalidInput(format!(
            "`id` must be a HubSpot object id such as 9876543201, not `{id}`"
        )));
    }
    Ok(format!(
        "{}/crm/v3/objects/{}/{id}",
        base_url(ctx),
        kind.path()
    ))
}

pub(crate) fn get_object(ctx: &Context, kind: Kind, input: GetObject) -> Result<CrmObject> {
    let mut url = object_url(ctx, kind, &input.id)?;
    let mut query = Vec::new();
    if let Some(properties) = &input.properties {
        query.push(format!(
            "properties={}",
            name_list("properties", properties)?
        ));
    }
    if let Some(types) = &input.associations {
        query.push(format!(
            "associations={}",
            name_list("associations", types)?
        ));
    }
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    send(Request::get(url))?.json()
}

pub(crate) fn get_deal(ctx: &Context, input: GetObject) -> Result<CrmObject> {
    get_object(ctx, Kind::Deals, input)
}

/// Input of `update-deal`.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct UpdateDeal {
    /// The deal's id.
    pub(crate) id: String,
    /// The properties to set, e.g. `{"dealstage": "closedwon"}`.
    pub(crate) properties: Map<String, Value>,
}

pub(crate) fn update_deal(ctx: &Context, input: UpdateDeal) -> Result<CrmObject> {
    let url = object_url(ctx, Kind::Deals, &input.id)?;
    let body = serde_json::json!({ "properties": input.properties });
    send(Request::patch(url).json(&body)?)?.json()
}

pub(crate) fn get_company(ctx: &Context, input: GetObject) -> Result<CrmObject> {
    get_object(ctx, Kind::Companies, input)
}

/// Input of `batch-read-deals` and `batch-read-companies`: HubSpot's body.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub(crate) struct BatchRead {
    /// The objects to read, `[{"id": "9876543201"}]`.
    pub(crate) inputs: Vec<BatchId>,
    /// The properties to return; HubSpot's default set when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) properties: Option<Vec<String>>,
}

/// One object of a batch read.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub(crate) struct BatchId {
    /// The object's id.
    pub(crate) id: String,
}

/// What a batch read answers.
#[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct BatchResult {
    /// `COMPLETE`.
    pub(crate) status: String,
    /// The objects found.
    pub(crate) results: Vec<CrmObject>,
    /// Which ids were not found, as HubSpot reports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) errors: Vec<Value>,
}

pub(crate) fn batch_read(ctx: &Context, kind: Kind, input: BatchRead) -> Result<BatchResult> {
    let url = format!(
        "{}/crm/v3/objects/{}/batch/read",
        base_url(ctx),
        kind.path()
    );
    send(Request::post(url).json(&input)?)?.json()
}

pub(crate) fn batch_read_deals(ctx: &Context, input: BatchRead) -> Result<BatchResult> {
    batch_read(ctx, Kind::Deals, input)
}

pub(crate) fn batch_read_companies(ctx: &Context, input: BatchRead) -> Result<BatchResult> {
    batch_read(ctx, Kind::Companies, input)
}
