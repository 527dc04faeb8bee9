//! Searches and lists of deals and companies, with their paging.

use junction_sdk::http::Request;
use junction_sdk::rest::page_size;
use junction_sdk::{Context, JsonSchema, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{Kind, base_url, send};
use crate::objects::{CrmObject, name_list};

/// Input of `search-deals` and `search-companies`: HubSpot's search body.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
pub(crate) struct Search {
    /// Any group may match; the filters within a group must all hold.
    /// Without groups, every object matches.
    #[serde(rename = "filterGroups", default)]
    pub(crate) filter_groups: Vec<FilterGroup>,
    /// The properties to return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) properties: Option<Vec<String>>,
    /// Results per page, up to 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) limit: Option<u32>,
    /// `paging.next.after` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) after: Option<String>,
}

/// Filters that must all hold.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub(crate) struct FilterGroup {
    /// The filters.
    pub(crate) filters: Vec<Filter>,
}

/// One condition on a property.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub(crate) struct Filter {
    /// The property, e.g. `dealstage`.
    #[serde(rename = "propertyName")]
    pub(crate) property_name: String,
    /// `EQ`, `NEQ`, `HAS_PROPERTY`, `GT`, ...
    pub(crate) operator: String,
    /// The value to compare with; absent for `HAS_PROPERTY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) value: Option<Value>,
}

/// A page of search or list results, as HubSpot returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct SearchPage {
    /// Matching objects (search only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) total: Option<u64>,
    /// This page's objects.
    pub(crate) results: Vec<CrmObject>,
    /// Where the next page starts; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) paging: Option<Paging>,
}

/// `paging` of a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Paging {
    /// The next page.
    pub(crate) next: NextPage,
}

/// `paging.next` of a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct NextPage {
    /// Pass as `after` to read the next page.
    pub(crate) after: String,
}

pub(crate) fn run_search(ctx: &Context, kind: Kind, search: &Search) -> Result<SearchPage> {
    let url = format!("{}/crm/v3/objects/{}/search", base_url(ctx), kind.path());
    send(Request::post(url).json(search)?)?.json()
}

pub(crate) fn search_deals(ctx: &Context, input: Search) -> Result<SearchPage> {
    run_search(ctx, Kind::Deals, &input)
}

pub(crate) fn search_companies(ctx: &Context, input: Search) -> Result<SearchPage> {
    run_search(ctx, Kind::Companies, &input)
}

pub(crate) fn list(ctx: &Context, kind: Kind, after: Option<&str>) -> Result<SearchPage> {
    let mut url = format!(
        "{}/crm/v3/objects/{}?limit={}&properties={}",
        base_url(ctx),
        kind.path(),
        page_size(ctx, 100, 100)?,
        name_list("properties", &kind.properties())?
    );
    if let Some(after) = after {
        url.push_str("&after=");
        url.push_str(after);
    }
    send(Request::get(url))?.json()
}
