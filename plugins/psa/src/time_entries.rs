//! The `approved-time-entries` stream.

use junction_sdk::http::{Request, encode_component};
use junction_sdk::{Context, Page, Result, rest};
use serde::Deserialize;
use serde_json::Value;

use crate::api::{send, url};
use crate::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// What `GET /time_entries/approved` answers.
#[derive(Debug, Deserialize)]
pub(crate) struct ApprovedPage {
    pub(crate) results: Vec<Value>,
    pub(crate) next_cursor: String,
    pub(crate) has_more: bool,
}

pub(crate) fn read_approved_time(ctx: &Context, cursor: Option<String>) -> Result<Page> {
    let limit = rest::page_size(ctx, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let mut query = format!("/time_entries/approved?limit={limit}");
    if let Some(since) = &cursor {
        query.push_str(&format!("&since={}", encode_component(since)));
    }
    let answer: ApprovedPage = send(Request::get(url(ctx, &query)?))?.json()?;
    Page::from_records(&answer.results, Some(answer.next_cursor), !answer.has_more)
}
