//! `junction plugin test --server URL --record`: the cases run against a
//! real system (a vendor's sandbox account, or a stand-in) through a
//! loopback proxy that writes each case's exchanges to its cassette, so the
//! same cases replay offline afterwards.
//!
//! What is written is what the replaying server needs: method, path,
//! query, status, the answer's body and the headers a connector reads
//! (`content-type`, `retry-after`, `location`, `link` and the rate-limit
//! ones). Request headers are never written (they carry the credentials the
//! host added), the system's address is written as `{server}` (replay puts
//! its own there), the connection's secrets are replaced by `<redacted>`
//! wherever the system echoed them, and so is the value of every JSON field
//! the cases' `[record] redact` names (e-mail addresses, phone numbers).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use junction_store::Auth;
use serde_json::Value;

use super::{Cassette, Interaction};

/// What replaces a redacted value.
const REDACTED: &str = "<redacted>";
/// Answer headers a cassette keeps.
const KEPT_HEADERS: [&str; 4] = ["content-type", "retry-after", "location", "link"];

/// The exchanges of the case that runs, and how to redact them.
#[derive(Debug, Default)]
pub(super) struct Recording {
    interactions: Vec<Interaction>,
    secrets: Vec<String>,
    fields: BTreeSet<String>,
}

/// The recording the proxy writes to, shared with the case loop.
pub(super) type Shared = Arc<Mutex<Recording>>;

fn lock(recording: &Shared) -> std::sync::MutexGuard<'_, Recording> {
    recording.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A new recording that redacts the secrets of `auth` and the JSON fields `fields`.
pub(super) fn recording(auth: Option<&Auth>, fields: &[String]) -> Shared {
    let secrets = match auth {
        Some(Auth::Bearer { token }) => vec![token.clone()],
        Some(Auth::Basic { password, .. }) => vec![password.clone()],
        Some(Auth::ApiKey { value, .. }) => vec![value.clone()],
        Some(Auth::OAuth2ClientCredentials { client_secret, .. }) => vec![client_secret.clone()],
        _ => Vec::new(),
    };
    Arc::new(Mutex::new(Recording {
        interactions: Vec::new(),
        secrets: secrets.into_iter().filter(|s| s.len() >= 4).collect(),
        fields: fields.iter().cloned().collect(),
    }))
}

/// Each cassette named by one case only: recording gives each its own.
pub(super) fn check_names<'a>(
    named: impl Iterator<Item = (&'a str, &'a str)>,
) -> anyhow::Result<()> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (case, cassette) in named {
        if let Some(first) = seen.insert(cassette, case) {
            bail!(
                "cases `{first}` and `{case}` both name cassette `{cassette}`; a recording writes one cassette per case, so give each its own"
            );
        }
    }
    Ok(())
}

/// Starts a new case's recording.
pub(super) fn start(recording: &Shared) {
    lock(recording).interactions.clear();
}

/// Writes what the case exchanged to `dir/NAME.toml`; returns the number
/// of exchanges.
pub(super) fn save(recording: &Shared, dir: &Path, name: &str) -> anyhow::Result<usize> {
    let interactions = std::mem::take(&mut lock(recording).interactions);
    let count = interactions.len();
    let text = toml::to_string(&Cassette { interactions })
        .context("the recorded answers do not fit a cassette")?;
    let at = chrono::Utc::now().format("%Y-%m-%d");
    let text = format!(
        "# Recorded on {at} by `junction plugin test --server URL --record`: URL is\n# `{{server}}`, secrets and the fields of `[record] redact` are `{REDACTED}`.\n{text}"
    );
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(count)
}

/// A loopback proxy to `upstream` that records every exchange.
pub(super) async fn proxy(
    upstream: &str,
    recording: Shared,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let client = reqwest::Client::new();
    let upstream = upstream.trim_end_matches('/').to_string();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (client, upstream, recording) =
                (client.clone(), upstream.clone(), recording.clone());
            async move {
                match forward(&client, &upstream, &recording, method, &uri, headers, body).await {
                    Ok(response) => response,
                    Err(e) => (StatusCode::BAD_GATEWAY, format!("{e:#}")).into_response(),
                }
            }
        },
    );
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("error: the recording proxy stopped: {e}");
        }
    });
    Ok((url, task))
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    recording: &Shared,
    method: Method,
    uri: &Uri,
    mut headers: HeaderMap,
    body: Bytes,
) -> anyhow::Result<Response> {
    let target = format!(
        "{upstream}{}",
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    headers.remove("host");
    let answer = client
        .request(method.clone(), &target)
        .headers(headers)
        .body(body)
        .send()
        .await
        .with_context(|| format!("{method} {target}"))?;
    let status = answer.status();
    let answer_headers = answer.headers().clone();
    let bytes = answer
        .bytes()
        .await
        .with_context(|| format!("{method} {target}"))?;

    let mut kept = BTreeMap::new();
    for name in answer_headers.keys() {
        let name = name.as_str();
        let kept_name = KEPT_HEADERS.contains(&name)
            || name.contains("ratelimit")
            || name.contains("rate-limit");
        if kept_name && let Some(value) = answer_headers.get(name).and_then(|v| v.to_str().ok()) {
            kept.insert(name.to_string(), value.to_string());
        }
    }
    let mut recorded = lock(recording);
    // The system's own address becomes `{server}`, which replay fills with
    // the replaying server's: links it hands out lead back to the cassette.
    let redact = |text: &str| {
        recorded
            .secrets
            .iter()
            .fold(text.replace(upstream, "{server}"), |t, s| {
                t.replace(s.as_str(), REDACTED)
            })
    };
    for value in kept.values_mut() {
        *value = redact(value);
    }
    let text = redact(&String::from_utf8_lossy(&bytes));
    let (json, body) = match serde_json::from_str::<Value>(&text) {
        Ok(mut value) => {
            redact_fields(&mut value, &recorded.fields);
            if has_null(&value) {
                // TOML has no null: the body is kept as JSON text.
                kept.entry("content-type".into())
                    .or_insert_with(|| "application/json".into());
                (None, Some(value.to_string()))
            } else {
                kept.remove("content-type")
                    .filter(|c| !c.starts_with("application/json"))
                    .map(|c| kept.insert("content-type".into(), c));
                (Some(value), None)
            }
        }
        Err(_) if text.is_empty() => (None, None),
        Err(_) => (None, Some(text)),
    };
    let query = uri.query().filter(|q| !q.is_empty()).map(redact);
    recorded.interactions.push(Interaction {
        method: method.to_string(),
        path: uri.path().to_string(),
        query,
        status: status.as_u16(),
        headers: kept,
        json,
        body,
    });
    drop(recorded);
    let mut response = Response::builder().status(status.as_u16());
    for (name, value) in &answer_headers {
        if name != "transfer-encoding" && name != "content-length" && name != "connection" {
            response = response.header(name, value);
        }
    }
    Ok(response.body(bytes.into())?)
}

/// Replaces the value of every field named in `fields`, at any depth.
fn redact_fields(value: &mut Value, fields: &BTreeSet<String>) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object.iter_mut() {
                if fields.contains(key) && !inner.is_null() {
                    *inner = Value::String(REDACTED.into());
                } else {
                    redact_fields(inner, fields);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact_fields(v, fields)),
        _ => {}
    }
}

fn has_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(o) => o.values().any(has_null),
        Value::Array(a) => a.iter().any(has_null),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_fields_are_redacted_at_any_depth() {
        let mut value = serde_json::json!({"email": "a@b.c", "items": [{"phone": "1", "name": "x"}], "e": null});
        let fields = BTreeSet::from(["email".to_string(), "phone".to_string()]);
        redact_fields(&mut value, &fields);
        assert_eq!(
            value,
            serde_json::json!({"email": REDACTED, "items": [{"phone": REDACTED, "name": "x"}], "e": null})
        );
        assert!(has_null(&value));
    }

    #[test]
    fn two_cases_may_not_share_a_cassette() {
        let err = check_names([("a", "x"), ("b", "y"), ("c", "x")].into_iter()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cases `a` and `c` both name cassette `x`")
        );
    }
}
