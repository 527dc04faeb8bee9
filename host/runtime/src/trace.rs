//! W3C trace context: the `traceparent` a request arrives with, the one a
//! run keeps across restarts, and the one the host sends with a plugin's
//! outbound requests.
//!
//! Spans are `tracing` spans; when the host exports traces (an
//! OpenTelemetry layer is installed) a span has an OpenTelemetry context and
//! [`TraceContext::of`] reads it. Without one, the host still carries a
//! trace id (the caller's, or a new one) so that logs, runs and the systems
//! called can be correlated; those contexts are marked not sampled.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The name of the W3C header.
pub const TRACEPARENT: &str = "traceparent";

/// Whether spans are exported (set once by whoever installs the subscriber).
static EXPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Says whether the installed subscriber exports spans. The fields a call
/// learns as it runs (plugin version, outcome, duration, peak memory) are
/// recorded on its span only then: they are for the exported trace, and the
/// JSON log formatter re-parses a span's fields on every record (5 records
/// cost about 6 µs per call when only logs are written).
pub fn set_exported(exported: bool) {
    EXPORTED.store(exported, std::sync::atomic::Ordering::Relaxed);
}

/// Whether spans are exported; see [`set_exported`].
pub(crate) fn exported() -> bool {
    EXPORTED.load(std::sync::atomic::Ordering::Relaxed)
}

/// A W3C trace context: trace id, parent span id and the sampled flag.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceContext(SpanContext);

impl TraceContext {
    /// Parses a `traceparent` header value; `None` when it is not a valid
    /// one (a malformed header starts a new trace, as the spec says).
    pub fn parse(traceparent: &str) -> Option<TraceContext> {
        let carrier =
            std::collections::HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
        let cx = TraceContextPropagator::new().extract(&carrier);
        let span = cx.span().span_context().clone();
        span.is_valid().then_some(TraceContext(span))
    }

    /// The `traceparent` header value.
    pub fn traceparent(&self) -> String {
        let mut carrier = std::collections::HashMap::new();
        let cx = opentelemetry::Context::new().with_remote_span_context(self.0.clone());
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
        carrier.remove(TRACEPARENT).unwrap_or_default()
    }

    /// A new trace (not sampled: nothing exports it).
    pub fn root() -> TraceContext {
        let ids = RandomIdGenerator::default();
        TraceContext(SpanContext::new(
            ids.new_trace_id(),
            ids.new_span_id(),
            TraceFlags::default(),
            false,
            TraceState::default(),
        ))
    }

    /// A new span id in the same trace, with the same flags.
    pub fn child(&self) -> TraceContext {
        TraceContext(SpanContext::new(
            self.0.trace_id(),
            RandomIdGenerator::default().new_span_id(),
            self.0.trace_flags(),
            false,
            self.0.trace_state().clone(),
        ))
    }

    /// The context of `span` when traces are exported, else `None`.
    pub fn of(span: &tracing::Span) -> Option<TraceContext> {
        let cx = span.context();
        let context = cx.span().span_context().clone();
        context.is_valid().then_some(TraceContext(context))
    }

    /// The context of `span` when traces are exported, else a child of
    /// `fallback` (or a new trace), so there is always one to pass on.
    pub fn of_or(span: &tracing::Span, fallback: Option<&TraceContext>) -> TraceContext {
        TraceContext::of(span)
            .unwrap_or_else(|| fallback.map(TraceContext::child).unwrap_or_else(Self::root))
    }

    /// Makes this context the remote parent of `span` (before it is entered).
    pub fn adopt(&self, span: &tracing::Span) {
        let cx = opentelemetry::Context::new().with_remote_span_context(self.0.clone());
        let _ = span.set_parent(cx);
    }

    /// Links `span` to this context (a span of the same transaction that is
    /// not its parent, such as an earlier part of a resumed run).
    pub fn link(&self, span: &tracing::Span) {
        span.add_link(self.0.clone());
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        self.0.trace_id().to_string()
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        self.0.span_id().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_bad_ones_are_refused() {
        let header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let cx = TraceContext::parse(header).unwrap();
        assert_eq!(cx.traceparent(), header);
        assert_eq!(cx.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(cx.span_id(), "b7ad6b7169203331");
        for bad in [
            "",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        ] {
            assert!(TraceContext::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn children_keep_the_trace_and_roots_are_new() {
        let root = TraceContext::root();
        let child = root.child();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_ne!(child.span_id(), root.span_id());
        assert_ne!(TraceContext::root().trace_id(), root.trace_id());
        assert!(root.traceparent().ends_with("-00"));
        // Without an exporting layer a span has no context of its own.
        let span = tracing::info_span!("x");
        assert_eq!(
            TraceContext::of_or(&span, Some(&root)).trace_id(),
            root.trace_id()
        );
    }
}
