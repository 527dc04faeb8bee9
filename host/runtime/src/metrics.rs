//! The host's Prometheus metrics: one registry per [`Runtime`], its families,
//! and the text a scrape of `/metrics` returns.
//!
//! Recording is a small method per event on [`Metrics`], so the call sites
//! stay one line. Labels are bounded: plugin, version, connection,
//! operation, flow and step names the operator configured, outcome names
//! from a fixed list, HTTP status codes; never run ids, event ids or text a
//! caller chose (a name that does not resolve is recorded as `""`).
//!
//! What is cheaper to read than to track (slots in use, plugin versions
//! loaded, learned pauses, open dead letters) is read when scraped.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::CallError;
use crate::inbound::WebhookError;
use crate::plugins::Plugin;
use crate::runtime::Runtime;

/// The content type of [`Runtime::metrics_text`]: the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// Latency buckets from 100 µs to about 52 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

/// The status label of an outbound request.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) enum HttpStatus {
    /// The system answered with this code.
    Code(u16),
    /// The request failed on the way (DNS, connect, TLS, timeout).
    Error,
    /// The host refused it (egress policy, no network, rate limit).
    Refused,
}

impl EncodeLabelValue for HttpStatus {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        match self {
            HttpStatus::Code(code) => write!(encoder, "{code}"),
            HttpStatus::Error => encoder.write_str("error"),
            HttpStatus::Refused => encoder.write_str("refused"),
        }
    }
}

/// The labels of a plugin call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    plugin: String,
    version: String,
    connection: String,
    operation: String,
    outcome: &'static str,
}

/// The labels of an outbound request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutboundLabels {
    connection: String,
    host: String,
    status: HttpStatus,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    connection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CircuitLabels {
    connection: String,
    to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    plugin: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabels {
    plugin: String,
    quota: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    connection: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlowLabels {
    flow: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    flow: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    flow: String,
    step: String,
    outcome: &'static str,
}

/// The metrics of one runtime (and of the flows and API over it).
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    call_seconds: HistogramFamily<CallLabels>,
    outbound: Family<OutboundLabels, Counter>,
    rate_waits: Family<ConnectionLabels, Counter>,
    rate_wait_seconds: HistogramFamily<ConnectionLabels>,
    rate_pause: Family<ConnectionLabels, FloatGauge>,
    slots_in_use: Family<VersionLabels, Gauge>,
    slots: Family<VersionLabels, Gauge>,
    versions_loaded: Family<PluginLabels, Gauge>,
    quota_refusals: Family<QuotaLabels, Counter>,
    webhooks: Family<WebhookLabels, Counter>,
    runs_started: Family<FlowLabels, Counter>,
    runs_finished: Family<RunLabels, Counter>,
    run_seconds: HistogramFamily<RunLabels>,
    step_attempts: Family<StepLabels, Counter>,
    step_seconds: HistogramFamily<StepLabels>,
    dead_letters_open: Family<FlowLabels, Gauge>,
    dead_letters_oldest: Family<FlowLabels, FloatGauge>,
    events_published: Counter,
    circuit_state: Family<ConnectionLabels, Gauge>,
    circuit_transitions: Family<CircuitLabels, Counter>,
    event_publish_failures: Counter,
    events_unpublished: Gauge,
    /// One scrape at a time refreshes the gauges read when scraped.
    scrape: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry with every family, and the store's commit latency.
    pub fn new(commit_seconds: Histogram) -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            calls: Family::default(),
            call_seconds: Family::new_with_constructor(latency),
            outbound: Family::default(),
            rate_waits: Family::default(),
            rate_wait_seconds: Family::new_with_constructor(latency),
            rate_pause: Family::default(),
            slots_in_use: Family::default(),
            slots: Family::default(),
            versions_loaded: Family::default(),
            quota_refusals: Family::default(),
            webhooks: Family::default(),
            runs_started: Family::default(),
            runs_finished: Family::default(),
            run_seconds: Family::new_with_constructor(latency),
            step_attempts: Family::default(),
            step_seconds: Family::new_with_constructor(latency),
            dead_letters_open: Family::default(),
            dead_letters_oldest: Family::default(),
            events_published: Counter::default(),
            circuit_state: Family::default(),
            circuit_transitions: Family::default(),
            event_publish_failures: Counter::default(),
            events_unpublished: Gauge::default(),
            scrape: tokio::sync::Mutex::new(()),
        };
        let r = &mut registry;
        r.register(
            "junction_plugin_calls",
            "Plugin calls (invoke, check, apply) by plugin, version, connection, operation and outcome",
            m.calls.clone(),
        );
        r.register(
            "junction_plugin_call_duration_seconds",
            "Duration of plugin calls, admission included",
            m.call_seconds.clone(),
        );
        r.register(
            "junction_outbound_requests",
            "Outbound requests of plugins by connection, host and status (the code, `error` or `refused`)",
            m.outbound.clone(),
        );
        r.register(
            "junction_rate_limit_waits",
            "Outbound requests that waited for the connection's rate limit",
            m.rate_waits.clone(),
        );
        r.register(
            "junction_rate_limit_wait_seconds",
            "How long outbound requests waited for the connection's rate limit",
            m.rate_wait_seconds.clone(),
        );
        r.register(
            "junction_rate_limit_pause_seconds",
            "What is left of the pause a connection learned from the remote system's headers",
            m.rate_pause.clone(),
        );
        r.register(
            "junction_plugin_slots_in_use",
            "Call slots of a plugin version in use",
            m.slots_in_use.clone(),
        );
        r.register(
            "junction_plugin_slots",
            "Call slots of a plugin version (its concurrency limit)",
            m.slots.clone(),
        );
        r.register(
            "junction_plugin_versions_loaded",
            "Plugin versions loaded, by plugin",
            m.versions_loaded.clone(),
        );
        r.register(
            "junction_quota_refusals",
            "Plugin calls that reached a quota, by plugin and quota (the `[limits]` key); each call counts once per quota",
            m.quota_refusals.clone(),
        );
        r.register(
            "junction_webhooks",
            "Inbound webhooks by connection and outcome (accepted, duplicate, bad_signature, refused, error)",
            m.webhooks.clone(),
        );
        r.register(
            "junction_flow_runs_started",
            "Flow runs started, by flow",
            m.runs_started.clone(),
        );
        r.register(
            "junction_flow_runs_finished",
            "Flow runs finished, by flow and status (completed, compensated, failed)",
            m.runs_finished.clone(),
        );
        r.register(
            "junction_flow_run_duration_seconds",
            "Duration of finished flow runs, from creation to the end",
            m.run_seconds.clone(),
        );
        r.register(
            "junction_flow_step_attempts",
            "Attempts of flow steps by flow, step and outcome (ok or the failure kind)",
            m.step_attempts.clone(),
        );
        r.register(
            "junction_flow_step_duration_seconds",
            "Duration of flow step attempts",
            m.step_seconds.clone(),
        );
        r.register(
            "junction_dead_letters_open",
            "Open dead letters, by flow",
            m.dead_letters_open.clone(),
        );
        r.register(
            "junction_dead_letters_oldest_age_seconds",
            "Age of the oldest open dead letter, by flow",
            m.dead_letters_oldest.clone(),
        );
        r.register(
            "junction_circuit_state",
            "The circuit breaker of a connection: 0 closed, 1 half-open (probing), 2 open (steps parked)",
            m.circuit_state.clone(),
        );
        r.register(
            "junction_circuit_transitions",
            "Changes of a connection's circuit, by the state it went to",
            m.circuit_transitions.clone(),
        );
        r.register(
            "junction_events_published",
            "Events of the outbox acknowledged by NATS JetStream (a duplicate JetStream dropped counts too)",
            m.events_published.clone(),
        );
        r.register(
            "junction_event_publish_failures",
            "Rounds of the outbox publisher that failed (NATS unreachable or not acknowledging); the events stay in the outbox",
            m.event_publish_failures.clone(),
        );
        r.register(
            "junction_events_unpublished",
            "Events of the outbox the publisher found not yet acknowledged on its last round",
            m.events_unpublished.clone(),
        );
        r.register(
            "junction_store_commit_duration_seconds",
            "Duration of the group committer's commits",
            commit_seconds,
        );
        Metrics { registry, ..m }
    }

    /// Records a call of `plugin` (`None`: it did not resolve) on
    /// `connection` (`""` for transforms) that ended as `outcome`.
    pub fn record_call<T>(
        &self,
        plugin: Option<&Plugin>,
        connection: &str,
        operation: &str,
        started: Instant,
        outcome: &Result<T, CallError>,
    ) {
        let outcome_name = match outcome {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        let known = plugin.is_some();
        // Names a caller typed that resolved to nothing stay out of the labels.
        let operation = match outcome {
            Err(CallError::UnknownOperation { .. }) => "",
            _ if known => operation,
            _ => "",
        };
        let labels = CallLabels {
            plugin: plugin.map(|p| p.name().to_string()).unwrap_or_default(),
            version: plugin.map(|p| p.info().version.clone()).unwrap_or_default(),
            connection: if known {
                connection.to_string()
            } else {
                String::new()
            },
            operation: operation.to_string(),
            outcome: outcome_name,
        };
        self.calls.get_or_create(&labels).inc();
        self.call_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
    }

    /// Records an outbound request of `connection` to `host`.
    pub(crate) fn record_outbound(&self, connection: &str, host: &str, status: HttpStatus) {
        // A refused host is one the plugin chose, not one the operator allowed.
        let host = if status == HttpStatus::Refused {
            ""
        } else {
            host
        };
        self.outbound
            .get_or_create(&OutboundLabels {
                connection: connection.to_string(),
                host: host.to_string(),
                status,
            })
            .inc();
    }

    /// Records that a call of `plugin` reached `quota`.
    pub(crate) fn record_quota_refusal(
        &self,
        plugin: &str,
        quota: crate::capabilities::quota::Quota,
    ) {
        self.quota_refusals
            .get_or_create(&QuotaLabels {
                plugin: plugin.to_string(),
                quota: quota.as_str(),
            })
            .inc();
    }

    /// Records that a request of `connection` waited `waited` for its rate limit.
    pub(crate) fn record_rate_wait(&self, connection: &str, waited: Duration) {
        let labels = ConnectionLabels {
            connection: connection.to_string(),
        };
        self.rate_waits.get_or_create(&labels).inc();
        self.rate_wait_seconds
            .get_or_create(&labels)
            .observe(waited.as_secs_f64());
    }

    /// Records a webhook to `connection` that was refused or failed.
    pub fn record_webhook_refused(&self, connection: &str, err: &WebhookError) {
        let (outcome, known) = match err {
            WebhookError::Refused(_) => ("bad_signature", true),
            WebhookError::NotConfigured(_) => ("refused", true),
            WebhookError::Call(CallError::UnknownConnection(_)) => ("refused", false),
            WebhookError::Call(_) => ("error", true),
        };
        self.record_webhook(if known { connection } else { "" }, outcome);
    }

    /// Records a webhook to `connection` whose events were taken:
    /// `duplicate` when every run it would start had been started before.
    pub fn record_webhook_accepted(&self, connection: &str, duplicate: bool) {
        let outcome = if duplicate { "duplicate" } else { "accepted" };
        self.record_webhook(connection, outcome);
    }

    /// Records a verified webhook whose runs could not be started.
    pub fn record_webhook_failed(&self, connection: &str) {
        self.record_webhook(connection, "error");
    }

    fn record_webhook(&self, connection: &str, outcome: &'static str) {
        self.webhooks
            .get_or_create(&WebhookLabels {
                connection: connection.to_string(),
                outcome,
            })
            .inc();
    }

    /// Records that the circuit of `connection` went to `state` (`closed`,
    /// `half_open` or `open`).
    pub fn record_circuit(&self, connection: &str, state: &'static str) {
        let labels = ConnectionLabels {
            connection: connection.to_string(),
        };
        let value = match state {
            "open" => 2,
            "half_open" => 1,
            _ => 0,
        };
        self.circuit_state.get_or_create(&labels).set(value);
        self.circuit_transitions
            .get_or_create(&CircuitLabels {
                connection: connection.to_string(),
                to: state,
            })
            .inc();
    }

    /// Records `count` events acknowledged by JetStream.
    pub fn record_events_published(&self, count: u64) {
        self.events_published.inc_by(count);
    }

    /// Records a failed round of the outbox publisher.
    pub fn record_event_publish_failure(&self) {
        self.event_publish_failures.inc();
    }

    /// Sets how many events the publisher found waiting.
    pub fn set_events_unpublished(&self, count: usize) {
        self.events_unpublished
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Records `count` runs of `flow` started.
    pub fn record_runs_started(&self, flow: &str, count: u64) {
        self.runs_started
            .get_or_create(&FlowLabels {
                flow: flow.to_string(),
            })
            .inc_by(count);
    }

    /// Records a run of `flow` finished as `status` (`completed`,
    /// `compensated` or `failed`), created at `created_at_ms` (ms since the epoch).
    pub fn record_run_finished(&self, flow: &str, status: &'static str, created_at_ms: i64) {
        let labels = RunLabels {
            flow: flow.to_string(),
            status,
        };
        self.runs_finished.get_or_create(&labels).inc();
        let seconds = (now_ms().saturating_sub(created_at_ms)).max(0) as f64 / 1000.0;
        self.run_seconds.get_or_create(&labels).observe(seconds);
    }

    /// Records an attempt of step `step` of `flow` that ended as `outcome`
    /// (`ok` or the failure kind) after `elapsed`.
    pub fn record_step(&self, flow: &str, step: &str, outcome: &'static str, elapsed: Duration) {
        let labels = StepLabels {
            flow: flow.to_string(),
            step: step.to_string(),
            outcome,
        };
        self.step_attempts.get_or_create(&labels).inc();
        self.step_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Runtime {
    /// This runtime's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Every metric in the Prometheus text format ([`CONTENT_TYPE`]), the
    /// gauges read at scrape time refreshed first. More families may be
    /// appended to the text (it has no end marker).
    pub async fn metrics_text(&self) -> Result<String, junction_store::Error> {
        let m = &self.metrics;
        let _one = m.scrape.lock().await;
        let dead = self.store.dead_letter_summary().await?;
        m.dead_letters_open.clear();
        m.dead_letters_oldest.clear();
        let now = now_ms();
        for d in dead {
            let labels = FlowLabels { flow: d.flow };
            m.dead_letters_open.get_or_create(&labels).set(d.open);
            let age = now.saturating_sub(d.oldest_at).max(0) as f64 / 1000.0;
            m.dead_letters_oldest.get_or_create(&labels).set(age);
        }
        m.slots.clear();
        m.slots_in_use.clear();
        m.versions_loaded.clear();
        for (name, versions) in self.plugins.all() {
            m.versions_loaded
                .get_or_create(&PluginLabels {
                    plugin: name.clone(),
                })
                .set(i64::try_from(versions.len()).unwrap_or(i64::MAX));
            for plugin in versions {
                let labels = VersionLabels {
                    plugin: name.clone(),
                    version: plugin.info().version.clone(),
                };
                let total = i64::from(plugin.limits.concurrency.max(1));
                let free = i64::try_from(plugin.slots.available_permits()).unwrap_or(0);
                m.slots.get_or_create(&labels).set(total);
                m.slots_in_use
                    .get_or_create(&labels)
                    .set(total.saturating_sub(free).max(0));
            }
        }
        m.rate_pause.clear();
        let pauses: Vec<(String, f64)> = self
            .nets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(name, bound)| {
                let pause = bound.net.rate.as_ref()?.pause_remaining();
                Some((name.clone(), pause.as_secs_f64()))
            })
            .collect();
        for (connection, pause) in pauses {
            m.rate_pause
                .get_or_create(&ConnectionLabels { connection })
                .set(pause);
        }
        let mut open = String::new();
        if prometheus_client::encoding::text::encode_registry(&mut open, &m.registry).is_err() {
            // Writing to a string fails only if a label's encoder does.
            tracing::error!("encoding the metrics failed");
        }
        Ok(prometheus_text(&open))
    }
}

/// OpenMetrics text (as the client library writes it) as Prometheus text
/// 0.0.4, which every scraper and `promtool` reads: a counter's `HELP` and
/// `TYPE` name its samples' `_total` name, and there are no `UNIT` or `EOF` lines.
fn prometheus_text(open: &str) -> String {
    let mut out = String::with_capacity(open.len() + 256);
    let mut help: Option<&str> = None;
    for line in open.lines() {
        if line.starts_with("# HELP ") {
            if let Some(h) = help.take() {
                out.push_str(h);
                out.push('\n');
            }
            help = Some(line);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some(name) = rest.strip_suffix(" counter")
        {
            if let Some(h) = help.take() {
                let text = h.strip_prefix("# HELP ").and_then(|h| h.strip_prefix(name));
                match text {
                    Some(text) => out.push_str(&format!("# HELP {name}_total{text}\n")),
                    None => {
                        out.push_str(h);
                        out.push('\n');
                    }
                }
            }
            out.push_str(&format!("# TYPE {name}_total counter\n"));
            continue;
        }
        if let Some(h) = help.take() {
            out.push_str(h);
            out.push('\n');
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if let Some(h) = help {
        out.push_str(h);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_by_their_samples() {
        let open = "# HELP a_calls Calls.\n# TYPE a_calls counter\na_calls_total{x=\"1\"} 2\n# HELP b Bytes.\n# TYPE b gauge\nb 3\n# EOF\n";
        assert_eq!(
            prometheus_text(open),
            "# HELP a_calls_total Calls.\n# TYPE a_calls_total counter\na_calls_total{x=\"1\"} 2\n# HELP b Bytes.\n# TYPE b gauge\nb 3\n"
        );
    }

    #[test]
    fn a_registry_renders() {
        let m = Metrics::new(Histogram::new(exponential_buckets(0.001, 2.0, 3)));
        m.record_webhook_accepted("c", false);
        m.record_runs_started("f", 2);
        let mut open = String::new();
        prometheus_client::encoding::text::encode_registry(&mut open, &m.registry).unwrap();
        let text = prometheus_text(&open);
        assert!(text.contains("junction_webhooks_total{connection=\"c\",outcome=\"accepted\"} 1"));
        assert!(text.contains("junction_flow_runs_started_total{flow=\"f\"} 2"));
        assert!(text.contains("# TYPE junction_store_commit_duration_seconds histogram"));
    }
}
