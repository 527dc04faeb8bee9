//! `/v1/connections/{name}/streams/{stream}`: one page of an incremental
//! read, the connector's `read` export.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};

use crate::config::Scope;
use crate::connections::call_options;
use crate::error::{ApiError, CallRefused, Refused};
use crate::extract::{ApiState, Caller};
use junction_runtime::runtime::CallError;
use junction_runtime::trace::TraceContext;

/// Where to read from.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// The `next_cursor` of the page before; absent reads from the start.
    cursor: Option<String>,
}

/// One page of a stream.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct StreamPage {
    /// The connector plugin.
    plugin: String,
    /// The version that read the page.
    version: String,
    /// The records, JSON objects.
    records: Vec<serde_json::Value>,
    /// Pass it as `cursor` to read on; absent when the stream has no position.
    next_cursor: Option<String>,
    /// True when the stream has no more records for now.
    done: bool,
}

/// Reads the page of a stream after a cursor from the connection's system.
#[utoipa::path(get, path = "/v1/connections/{name}/streams/{stream}", tag = "connections",
    security(("bearer" = ["invoker"])),
    params(
        ("name" = String, Path, description = "Connection name"),
        ("stream" = String, Path, description = "Stream name, as the plugin documents it"),
        PageQuery,
    ),
    responses(Refused, CallRefused, (status = 200, description = "The page", body = StreamPage)))]
pub(crate) async fn read_stream(
    caller: Caller,
    State(state): State<ApiState>,
    Path((name, stream)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
    headers: axum::http::HeaderMap,
    trace: Option<Extension<TraceContext>>,
) -> Result<Json<StreamPage>, ApiError> {
    caller.require(Scope::Invoker)?;
    let options = call_options(&headers, trace.map(|t| t.0));
    let page = state
        .runtime
        .read(&name, &stream, query.cursor.as_deref(), options)
        .await?;
    let records = page
        .records
        .iter()
        .map(|r| serde_json::from_str(r))
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::from(CallError::BadOutput(e.to_string())))?;
    Ok(Json(StreamPage {
        plugin: page.plugin.name().to_string(),
        version: page.plugin.version().to_string(),
        records,
        next_cursor: page.next_cursor,
        done: page.done,
    }))
}
