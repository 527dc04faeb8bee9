//! Answers checked against the API's OpenAPI document: each test that calls
//! the API passes what it received through [`check_response`], which fails
//! the test when the route, the method, the status or the body's shape is
//! not what the document says.

use std::sync::LazyLock;

use serde_json::Value;

static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    serde_json::to_value(junction_api::openapi_document()).expect("the document serializes")
});

/// The API's OpenAPI document as JSON.
pub fn document() -> &'static Value {
    &DOCUMENT
}

/// The documented path template that `path` (without its query) matches:
/// literal segments win over parameters (`/v1/dead-letters/replay` before
/// `/v1/dead-letters/{id}`).
pub fn template_of(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    let paths = DOCUMENT["paths"].as_object()?;
    paths
        .keys()
        .filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (part, segment) in parts.iter().zip(&segments) {
                if part.starts_with('{') && part.ends_with('}') {
                    if segment.is_empty() {
                        return None;
                    }
                } else if part == segment {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, template.as_str()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, template)| template)
}

/// Fails unless the answer `status` with `content_type` and `body` to
/// `method uri` is one the document describes, its body valid against the
/// documented schema.
pub fn check_response(
    method: &str,
    uri: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) {
    let path = uri.split('?').next().unwrap_or(uri);
    let what = format!("{method} {uri} -> {status}");
    let Some(template) = template_of(path) else {
        // Not a route: the router's fallback answers.
        assert_eq!(status, 404, "{what}: {path} is not in the OpenAPI document");
        return;
    };
    let Some(operation) = DOCUMENT["paths"][template].get(method.to_ascii_lowercase()) else {
        assert_eq!(
            status, 405,
            "{what}: {method} {template} is not in the OpenAPI document"
        );
        return;
    };
    if status == 413 || status == 405 {
        // Answered by the body limit or the router before any handler.
        return;
    }
    let Some(response) = operation["responses"].get(status.to_string()) else {
        panic!(
            "{what}: status {status} of {method} {template} is not in the OpenAPI document (it lists {:?}); body: {}",
            operation["responses"]
                .as_object()
                .map(|r| r.keys().collect::<Vec<_>>()),
            String::from_utf8_lossy(body)
        );
    };
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        assert!(
            body.is_empty(),
            "{what}: the document says no body, got {}",
            String::from_utf8_lossy(body)
        );
        return;
    };
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    let Some((_, described)) = content
        .iter()
        .find(|(documented, _)| documented.split(';').next().map(str::trim) == Some(media))
    else {
        panic!(
            "{what}: content type {media:?} is not among the documented {:?}",
            content.keys().collect::<Vec<_>>()
        );
    };
    if media != "application/json" {
        return;
    }
    let instance: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "{what}: the body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    let mut schema = described["schema"].clone();
    if !schema.is_object() {
        return;
    }
    // `#/components/...` references resolve inside the schema document.
    schema["components"] = DOCUMENT["components"].clone();
    let validator = jsonschema::draft202012::new(&schema)
        .unwrap_or_else(|e| panic!("{what}: the documented schema does not compile: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: the body does not match the OpenAPI document: {}\nbody: {instance}",
        errors.join("; ")
    );
}

/// An answer of the API, already checked against the document.
pub struct Answer {
    /// Its status.
    pub status: http::StatusCode,
    /// Its headers.
    pub headers: http::HeaderMap,
    /// Its body.
    pub body: axum::body::Bytes,
}

impl Answer {
    /// The body as JSON, or `Value::Null` when it is empty.
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "answer is not JSON ({}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("the body is UTF-8")
    }
}

/// Sends `request` to `app` and checks the answer against the document.
pub async fn send(app: &axum::Router, request: http::Request<axum::body::Body>) -> Answer {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let method = request.method().to_string();
    let uri = request.uri().to_string();
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body arrives")
        .to_bytes();
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    check_response(&method, &uri, status.as_u16(), content_type, &body);
    Answer {
        status,
        headers,
        body,
    }
}

/// Sends `body` to `method uri` of `app` with `token` as the bearer (none
/// without one), checks the answer against the document, and returns its
/// status and body: JSON when it is JSON, else the text as a JSON string
/// (`Value::Null` when empty).
pub async fn call(
    app: &axum::Router,
    token: Option<&str>,
    method: &str,
    uri: &str,
    body: impl Into<String>,
) -> (http::StatusCode, Value) {
    let mut request = http::Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(axum::body::Body::from(body.into()))
        .expect("a valid request");
    let answer = send(app, request).await;
    let text = answer.text();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (answer.status, value)
}
