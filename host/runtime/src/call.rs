//! What every call shares: the output check, the deadline and
//! turning a guest's trap, timeout or error into a [`CallError`].

use std::future::Future;
use std::time::{Duration, Instant};

use tracing::Instrument;
use tracing::field::Empty;

use wasmtime::Store as WasmStore;

use junction_registry::World;
use wasmtime::component::{ComponentNamedList, InstancePre, Lift, Lower, TypedFunc};

use crate::bindings::junction::plugin::types::Error as PluginError;
use crate::capabilities::HostState;
use crate::engine::Limits;
use crate::error::CallError;
use crate::plugins::Plugin;
use crate::runtime::DEADLINE_GRACE;

/// Checks what a call returned: within the output cap (each output also
/// counts a few bytes, so a flood of empty strings is capped too) and JSON.
pub(crate) fn check_output<'a>(
    limits: &Limits,
    outputs: impl IntoIterator<Item = &'a str>,
) -> Result<(), CallError> {
    const PER_OUTPUT_BYTES: usize = 8;
    let limit = limits.output_bytes;
    let mut size = 0usize;
    for output in outputs {
        size += output.len() + PER_OUTPUT_BYTES;
        if u64::try_from(size).unwrap_or(u64::MAX) > limit {
            return Err(CallError::OutputTooLarge { size, limit });
        }
        serde_json::from_str::<serde::de::IgnoredAny>(output)
            .map_err(|e| CallError::BadOutput(e.to_string()))?;
    }
    Ok(())
}

/// The result of a call that can fail with a plugin error. When the host's
/// rate gate refused one of the call's requests and the call then failed,
/// the caller is told `rate-limited` with the wait, whatever the plugin
/// made of the refused request; when the egress policy refused one and the
/// plugin then reported an error, the caller is told `egress_denied` with
/// the setting that would allow it, not that the plugin failed.
pub(crate) fn conclude<T>(
    outcome: Result<Result<T, PluginError>, CallError>,
    store: &WasmStore<HostState>,
) -> Result<T, CallError> {
    if let Ok(Ok(value)) = outcome {
        return Ok(value);
    }
    let signals = &store.data().outbound.signals;
    let limited = *signals
        .rate_limited
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(wait) = limited {
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
        return Err(CallError::Plugin(PluginError::RateLimited(ms)));
    }
    let denied = signals
        .egress_denied
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let (Some((denial, fix)), Ok(Err(_))) = (denied, &outcome) {
        return Err(CallError::EgressDenied { denial, fix });
    }
    outcome?.map_err(CallError::Plugin)
}

pub(crate) fn wrong_world(plugin: &Plugin, expected: World) -> CallError {
    CallError::WrongWorld {
        plugin: plugin.name().to_string(),
        expected,
        actual: plugin.world(),
    }
}

/// Instantiates `pre` in `store` and returns its export `name` as a typed
/// function. The generated bindings' `instantiate` would look up and
/// type-check every export of the world on each call; a call needs one.
pub(crate) async fn export<P, R>(
    pre: &InstancePre<HostState>,
    store: &mut WasmStore<HostState>,
    name: &str,
) -> wasmtime::Result<TypedFunc<P, R>>
where
    P: ComponentNamedList + Lower + Send + Sync,
    R: ComponentNamedList + Lift + Send + Sync,
{
    pre.instantiate_async(&mut *store)
        .await?
        .get_typed_func::<P, R>(&mut *store, name)
}

/// The marker error of an epoch deadline.
#[derive(Debug)]
pub(crate) struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// The outcome of running guest code: `None` when the outer timeout fired.
pub(crate) type Ran<T> = Option<wasmtime::Result<T>>;

/// Runs `f` on the store, giving up from outside shortly after the deadline
/// in case the guest is parked in a host call that epochs cannot interrupt.
pub(crate) async fn run_with_deadline<T>(
    store: &mut WasmStore<HostState>,
    deadline: Duration,
    f: impl AsyncFnOnce(&mut WasmStore<HostState>) -> wasmtime::Result<T>,
) -> Ran<T> {
    tokio::time::timeout(deadline + DEADLINE_GRACE, f(store))
        .await
        .ok()
}

/// The span of one plugin call (`kind` is `invoke`, `check` or `apply`);
/// [`traced`] fills in its outcome and duration, [`settle`] its peak memory.
pub(crate) fn call_span(kind: &str, connection: &str, operation: &str) -> tracing::Span {
    tracing::info_span!(
        "plugin.call",
        otel.name = %format!("{kind} {operation}"),
        plugin = Empty,
        plugin.version = Empty,
        connection = %connection,
        operation = %operation,
        outcome = Empty,
        duration_ms = Empty,
        memory.peak_bytes = Empty,
    )
}

/// Runs `call` inside `span`, then records its outcome and duration.
pub(crate) async fn traced<T>(
    span: tracing::Span,
    call: impl Future<Output = Result<T, CallError>>,
) -> Result<T, CallError> {
    let started = Instant::now();
    let result = call.instrument(span.clone()).await;
    if !crate::trace::exported() {
        return result;
    }
    span.record(
        "outcome",
        match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        },
    );
    span.record("duration_ms", started.elapsed().as_secs_f64() * 1_000.0);
    result
}

/// Records the plugin version a call resolved to on the current call span.
pub(crate) fn record_plugin(plugin: &Plugin) {
    if !crate::trace::exported() {
        return;
    }
    let span = tracing::Span::current();
    span.record("plugin", plugin.name());
    span.record("plugin.version", tracing::field::display(plugin.version()));
}

/// Turns the outcome of guest code into the call's result, classifying traps.
pub(crate) fn settle<T>(
    ran: Ran<T>,
    store: &WasmStore<HostState>,
    deadline_ms: u64,
) -> Result<T, CallError> {
    let state = store.data();
    state.report_dropped_logs();
    if crate::trace::exported() {
        tracing::Span::current().record("memory.peak_bytes", state.limiter.memory_peak);
    }
    let err = match ran {
        None => return Err(CallError::Timeout { deadline_ms }),
        Some(Ok(value)) => return Ok(value),
        Some(Err(err)) => err,
    };
    if err.downcast_ref::<DeadlineExceeded>().is_some() {
        return Err(CallError::Timeout { deadline_ms });
    }
    if state.limiter.memory_refused {
        return Err(CallError::LimitExceeded {
            what: "memory".into(),
        });
    }
    if err.chain().any(|e| {
        matches!(
            e.downcast_ref::<wasmtime::component::ResourceTableError>(),
            Some(wasmtime::component::ResourceTableError::Full)
        )
    }) {
        return Err(CallError::LimitExceeded {
            what: "resource handle".into(),
        });
    }
    if state.limiter.table_refused {
        return Err(CallError::LimitExceeded {
            what: "table".into(),
        });
    }
    let output = state.captured_output();
    let detail = if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        trap.to_string()
    } else {
        format!("{err:?}")
    };
    let last_lines: Vec<&str> = output.lines().rev().take(5).collect();
    let said = last_lines.into_iter().rev().collect::<Vec<_>>().join(" | ");
    tracing::warn!(plugin = %state.scope.plugin, error = %detail, output = %said, "plugin call trapped");
    Err(CallError::Trap(if said.is_empty() {
        detail
    } else {
        format!("{detail}; the plugin said: {said}")
    }))
}
