//! The span of each API request and its W3C trace context.
//!
//! A request carrying a valid `traceparent` continues that trace; any other
//! starts one. Handlers that start runs read the request's [`TraceContext`]
//! from the request extensions, so a run is part of the trace of the
//! webhook or call that started it. Every answer says its trace in a
//! `traceresponse` header (W3C Trace Context level 2).

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing::field::Empty;

use junction_runtime::trace::{TRACEPARENT, TraceContext};

/// The middleware: runs the request inside its span.
pub(crate) async fn traced(mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    // The route template, never the path: its ids would make every span name unique.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let incoming = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse);
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = Empty,
        trace_id = Empty,
    );
    if let Some(parent) = &incoming {
        parent.adopt(&span);
    }
    let trace = TraceContext::of_or(&span, incoming.as_ref());
    span.record("trace_id", trace.trace_id());
    request.extensions_mut().insert(trace.clone());
    let mut response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    if let Ok(value) = HeaderValue::from_str(&trace.traceparent()) {
        response.headers_mut().insert("traceresponse", value);
    }
    response
}
