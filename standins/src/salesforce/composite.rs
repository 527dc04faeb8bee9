//! The composite API: subrequests run in order, `@{reference}` substitution, and all-or-none
//! roll-back.

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::reply::{Reply, not_found};
use super::*;

/// Replaces each `@{referenceId.path}` in `text` with the value at `path` in that subrequest's
/// answer; `Err` names the first reference that cannot be resolved.
pub(super) fn resolve_references(
    text: &str,
    results: &HashMap<String, Value>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let reference = &rest[start + 2..start + len];
        let mut parts = reference.split('.');
        let value = parts
            .next()
            .and_then(|id| results.get(id))
            .and_then(|body| parts.try_fold(body, |v, key| v.get(key)));
        match value {
            Some(Value::String(s)) => out.push_str(s),
            Some(other) => out.push_str(&other.to_string()),
            None => return Err(reference.to_owned()),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn composite_item(reply: &Reply, reference_id: &str) -> Value {
    let mut headers = Map::new();
    if let Some(location) = &reply.location {
        headers.insert("Location".into(), json!(location));
    }
    json!({
        "body": reply.body.clone().unwrap_or(Value::Null),
        "httpHeaders": headers,
        "httpStatusCode": reply.status.as_u16(),
        "referenceId": reference_id,
    })
}

fn halted(message: &str) -> Reply {
    Reply::error(StatusCode::BAD_REQUEST, "PROCESSING_HALTED", message, &[])
}

pub(super) fn composite(store: &mut Store, context: &Context<'_>, body: &[u8]) -> Reply {
    let request: Value = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(_) => {
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "JSON_PARSER_ERROR",
                "The composite request body is not valid JSON",
                &[],
            );
        }
    };
    let all_or_none = request.get("allOrNone").and_then(Value::as_bool) == Some(true);
    let Some(subrequests) = request.get("compositeRequest").and_then(Value::as_array) else {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "compositeRequest is required",
            &[],
        );
    };
    if subrequests.len() > MAX_COMPOSITE_SUBREQUESTS {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            &format!("Composite requests can have at most {MAX_COMPOSITE_SUBREQUESTS} subrequests"),
            &[],
        );
    }
    let snapshot = all_or_none.then(|| store.clone());
    let prefix = format!("/services/data/{}/", context.version);
    let mut results: HashMap<String, Value> = HashMap::new();
    let mut items: Vec<(String, Reply)> = Vec::new();
    let mut failed = false;
    for subrequest in subrequests {
        let reference_id = subrequest
            .get("referenceId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if failed && all_or_none {
            items.push((reference_id, halted(ROLLED_BACK)));
            continue;
        }
        let reply = run_subrequest(store, context, &prefix, subrequest, &results);
        if reply.is_success() {
            if let Some(body) = &reply.body {
                results.insert(reference_id.clone(), body.clone());
            }
        } else {
            failed = true;
        }
        items.push((reference_id, reply));
    }
    if failed && let Some(snapshot) = snapshot {
        *store = snapshot;
        for (_, reply) in &mut items {
            if reply.is_success() {
                *reply = halted(ROLLED_BACK);
            }
        }
    }
    let responses: Vec<Value> = items
        .iter()
        .map(|(reference_id, reply)| composite_item(reply, reference_id))
        .collect();
    Reply::ok(json!({ "compositeResponse": responses }))
}

fn run_subrequest(
    store: &mut Store,
    context: &Context<'_>,
    prefix: &str,
    subrequest: &Value,
    results: &HashMap<String, Value>,
) -> Reply {
    let method = subrequest
        .get("method")
        .and_then(Value::as_str)
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    let url = subrequest.get("url").and_then(Value::as_str);
    let (Some(method), Some(url)) = (method, url) else {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "Each subrequest needs a method and a url",
            &[],
        );
    };
    let body = match subrequest.get("body") {
        Some(body) => body.to_string(),
        None => String::new(),
    };
    let (url, body) = match (
        resolve_references(url, results),
        resolve_references(&body, results),
    ) {
        (Ok(url), Ok(body)) => (url, body),
        (Err(reference), _) | (_, Err(reference)) => {
            return halted(&format!(
                "Invalid reference specified. No value for {reference} found. Provided \
                 referenceId ids must be of a previous subrequest that succeeded."
            ));
        }
    };
    let Some(rest) = url.strip_prefix(prefix) else {
        return not_found();
    };
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    // Decoded segment by segment, as the router decodes a request's path.
    let decoded: Vec<String> = path
        .trim_end_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    dispatch(store, context, &method, &segments, query, body.as_bytes())
}
