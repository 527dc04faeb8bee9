//! Asynchronous requests, as NetSuite's REST web services take them: a write with `Prefer:
//! respond-async` is answered `202 Accepted` with `Location` naming a job
//! (`/services/rest/async/v1/job/{id}`), whose result (`.../job/{id}/task/{id}/result`) is the
//! answer the synchronous request would have had. Only asynchronous requests honour
//! `X-NetSuite-Idempotency-Key`: a second one with a key already submitted is refused with
//! `400` `IDEMPOTENCY_ERROR` and changes nothing. A synchronous request ignores the key, so a
//! retried synchronous create makes a second record, as it does on the real service.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::lock;

use super::answers::Answer;
use super::{IDEMPOTENCY_HEADER, NetsuiteState, Store};

/// The path of the asynchronous request service, under the base URL.
pub const ASYNC_PATH: &str = "/services/rest/async/v1";

fn is_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
}

/// Runs `operation` now, answering as a synchronous or an asynchronous request (see the module).
pub(super) fn dispatch(
    state: &NetsuiteState,
    headers: &HeaderMap,
    operation: impl FnOnce(&mut Store) -> Answer,
) -> Response {
    let mut store = lock(&state.store);
    if !is_async(headers) {
        return operation(&mut store).into_response();
    }
    let key = headers
        .get(IDEMPOTENCY_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    if let Some(key) = &key
        && store.async_keys.contains(key)
    {
        return Answer::error(
            StatusCode::BAD_REQUEST,
            "IDEMPOTENCY_ERROR",
            "A request with the same idempotency key is already submitted.",
            None,
        )
        .into_response();
    }
    let answer = operation(&mut store);
    store.jobs.push(answer);
    if let Some(key) = key {
        store.async_keys.insert(key);
    }
    let location = format!("{}{ASYNC_PATH}/job/{}", state.base_url, store.jobs.len());
    let mut response = StatusCode::ACCEPTED.into_response();
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn job_index(store: &Store, id: &str) -> Option<usize> {
    let n = id.parse::<usize>().ok()?;
    (1..=store.jobs.len()).contains(&n).then(|| n - 1)
}

fn no_job() -> Response {
    Answer::error(
        StatusCode::NOT_FOUND,
        "NONEXISTENT_ID",
        "The asynchronous job does not exist.",
        None,
    )
    .into_response()
}

/// `GET /job/{id}`: every job here has run by the time it is read.
pub(super) async fn job(
    State(state): State<Arc<NetsuiteState>>,
    Path(id): Path<String>,
) -> Response {
    let store = lock(&state.store);
    if job_index(&store, &id).is_none() {
        return no_job();
    }
    let url = format!("{}{ASYNC_PATH}/job/{id}", state.base_url);
    Json(json!({
        "id": id,
        "completed": true,
        "progress": "succeeded",
        "links": [{"rel": "self", "href": url}],
        "task": {"links": [{"rel": "related", "href": format!("{url}/task/{id}")}]},
    }))
    .into_response()
}

/// `GET /job/{id}/task/{id}/result`: the answer of the request.
pub(super) async fn result(
    State(state): State<Arc<NetsuiteState>>,
    Path((id, task)): Path<(String, String)>,
) -> Response {
    let store = lock(&state.store);
    match job_index(&store, &id) {
        Some(index) if task == id => store.jobs[index].clone().into_response(),
        _ => no_job(),
    }
}
