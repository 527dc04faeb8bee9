//! SOQL: quoting, `query` and its paging by `nextRecordsUrl`.

use junction_sdk::http::{Request, encode_component};
use junction_sdk::{Context, Error, JsonSchema, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{data_url, send};

/// `text` as a SOQL string literal.
pub(crate) fn soql_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Input of `query`: a SOQL query, or the `nextRecordsUrl` of a page.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct Query {
    /// The SOQL query, e.g. `SELECT Id, Name FROM Account`.
    #[serde(default)]
    pub(crate) soql: Option<String>,
    /// The `nextRecordsUrl` of the previous page, to read the next one.
    #[serde(default, rename = "nextRecordsUrl")]
    pub(crate) next_records_url: Option<String>,
}

/// A page of query results, as Salesforce returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct QueryPage {
    /// Records matching the query, on every page.
    #[serde(rename = "totalSize")]
    pub(crate) total_size: u64,
    /// True on the last page.
    pub(crate) done: bool,
    /// This page's records, each with `attributes` and the selected fields.
    pub(crate) records: Vec<Value>,
    /// Where the next page is; absent on the last page.
    #[serde(
        rename = "nextRecordsUrl",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) next_records_url: Option<String>,
}

pub(crate) fn query(ctx: &Context, input: Query) -> Result<QueryPage> {
    match (input.soql, input.next_records_url) {
        (Some(soql), None) => run_query(ctx, &soql),
        (None, Some(next)) => next_page(ctx, &next),
        _ => Err(Error::InvalidInput(
            "give exactly one of `soql` and `nextRecordsUrl`".into(),
        )),
    }
}

pub(crate) fn run_query(ctx: &Context, soql: &str) -> Result<QueryPage> {
    let url = format!("{}/query?q={}", data_url(ctx)?, encode_component(soql));
    send(Request::get(url))?.json()
}

/// The page at `next`, a `nextRecordsUrl` Salesforce gave.
pub(crate) fn next_page(ctx: &Context, next: &str) -> Result<QueryPage> {
    let valid = next.starts_with("/services/data/")
        && next.contains("/query/")
        && next
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/.-_".contains(c));
    if !valid {
        return Err(Error::InvalidInput(format!(
            "`nextRecordsUrl` must be one Salesforce returned, such as \
             /services/data/v60.0/query/01gD0000002HU6KIAW-2000, not `{next}`"
        )));
    }
    let instance = ctx.require_config("instance_url")?;
    let url = format!("{}{next}", instance.trim_end_matches('/'));
    send(Request::get(url))?.json()
}
