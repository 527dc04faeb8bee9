//! Stream triggers: a NATS JetStream stream as what starts a flow's runs.
//!
//! Each flow whose trigger is `{ type = "stream", stream, subject }` has a
//! durable pull consumer, `junction-<flow>`, shared by every host (so the
//! hosts of a cluster share its messages). A message starts one run of the
//! flow's current version, recorded under the stream and the message's
//! stream sequence in the same transaction as the run, and is acknowledged
//! only after that commit: a host killed in between leaves the message
//! unacknowledged, JetStream delivers it again, and the second delivery
//! finds the run and is acknowledged without starting another.
//!
//! A message that is a CloudEvent in the structured JSON format is the
//! run's trigger as it is; any other payload is wrapped in one
//! (`dev.junction.stream.message`, `data` the JSON or the text).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer};
use futures_util::StreamExt;
use serde_json::Value;

use super::definition::{Deliver, Trigger};
use super::{EventRun, FlowError, Flows, Result, definition, new_run, now_ms};
use junction_runtime::trace::TraceContext;
use junction_store::{CloudEvent, NewEventRun};

/// How often the host looks for stream triggers other hosts deployed.
const RESCAN: Duration = Duration::from_secs(5);

/// The stream triggers' shared state in [`Flows`].
#[derive(Debug, Default)]
pub(crate) struct Streams {
    /// Whether this host consumes streams (it has `[events] nats_url`).
    enabled: AtomicBool,
    /// A flow was deployed here: look again at once.
    deployed: tokio::sync::Notify,
}

impl Streams {
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub(crate) fn deployed(&self) {
        self.deployed.notify_one();
    }
}

/// What a deploy says is wrong with a stream trigger.
pub(crate) fn check(stream: &str, subject: Option<&str>, ack_wait_ms: u64) -> Vec<String> {
    let mut problems = Vec::new();
    if !(100..=3_600_000).contains(&ack_wait_ms) {
        problems.push(format!(
            "trigger.ack_wait_ms: {ack_wait_ms} is outside 100 to 3600000 (an hour)"
        ));
    }
    let token = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !token(stream) {
        problems.push(format!(
            "trigger.stream: `{stream}` is not a JetStream stream name: use letters, digits, `_` and `-`"
        ));
    }
    if let Some(subject) = subject {
        let tokens: Vec<&str> = subject.split('.').collect();
        let last = tokens.len() - 1;
        let ok = tokens
            .iter()
            .enumerate()
            .all(|(i, t)| token(t) || *t == "*" || (*t == ">" && i == last));
        if !ok {
            problems.push(format!(
                "trigger.subject: `{subject}` is not a NATS subject: dot-separated tokens of letters, digits, `_` and `-`, or `*`, or a last `>` (e.g. `crm.deals.>`)"
            ));
        }
    }
    problems
}

/// A flow's stream trigger as its consumer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listener {
    flow: String,
    stream: String,
    subject: Option<String>,
    deliver: Deliver,
    ack_wait: Duration,
}

impl Listener {
    /// The durable consumer's name.
    fn durable(&self) -> String {
        format!("junction-{}", self.flow)
    }

    fn config(&self) -> consumer::pull::Config {
        consumer::pull::Config {
            durable_name: Some(self.durable()),
            description: Some(format!("starts runs of Junction flow `{}`", self.flow)),
            filter_subject: self.subject.clone().unwrap_or_default(),
            deliver_policy: match self.deliver {
                Deliver::New => consumer::DeliverPolicy::New,
                Deliver::All => consumer::DeliverPolicy::All,
            },
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            ..Default::default()
        }
    }
}

impl Flows {
    /// Starts consuming the streams of the flows with stream triggers, on
    /// the current Tokio runtime, when `nats_url` is set; it follows
    /// deploys (this host's at once, the others' within seconds) and stops
    /// once every other handle to these flows is gone.
    pub fn spawn_stream_triggers(
        self: &Arc<Self>,
        nats_url: Option<&str>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let url = nats_url?.to_string();
        self.streams.enabled.store(true, Ordering::Relaxed);
        let weak = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            let shown = junction_store::redact_url(&url);
            let mut backoff = Duration::from_millis(500);
            let client = loop {
                let connecting = async_nats::ConnectOptions::new()
                    .name("junction-triggers")
                    .connection_timeout(Duration::from_secs(5))
                    .connect(url.as_str())
                    .await;
                match connecting {
                    Ok(client) => break client,
                    Err(e) => {
                        tracing::warn!(url = %shown, error = %e, retry_in_ms = backoff.as_millis() as u64, "stream triggers cannot reach NATS; their messages wait in JetStream");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                        if weak.strong_count() == 0 {
                            return;
                        }
                    }
                }
            };
            supervise(weak, jetstream::new(client)).await;
        }))
    }

    /// The stream triggers of the current versions of every flow.
    async fn listeners(&self) -> Result<Vec<Listener>> {
        let mut found = Vec::new();
        for row in self.store().current_flows().await? {
            let Ok(def) = definition::parse(&row.source) else {
                continue;
            };
            if let Trigger::Stream {
                stream,
                subject,
                deliver,
                ack_wait_ms,
            } = def.trigger
            {
                found.push(Listener {
                    flow: row.name,
                    stream,
                    subject,
                    deliver,
                    ack_wait: Duration::from_millis(ack_wait_ms),
                });
            }
        }
        Ok(found)
    }

    /// Starts the run of `flow`'s current version for the message at
    /// `seq` of `stream` (made at `epoch`, so that a stream deleted and made
    /// again does not look like the old one), unless that message started
    /// one before (then that run is answered); committed before it
    /// returns. `None`: the flow's trigger is no longer this stream.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_run_for_message(
        &self,
        flow: &str,
        stream: &str,
        epoch: i128,
        seq: u64,
        subject: &str,
        payload: &[u8],
    ) -> Result<Option<EventRun>> {
        let Some(row) = self.store().current_flow(flow).await? else {
            return Ok(None);
        };
        let def = definition::parse(&row.source).map_err(FlowError::Invalid)?;
        if !matches!(&def.trigger, Trigger::Stream { stream: s, .. } if s == stream) {
            return Ok(None);
        }
        let source = format!("/jetstream/{stream}");
        let event = trigger_event(&source, seq, subject, payload);
        let trigger = serde_json::to_string(&event)?;
        let run_id = uuid::Uuid::new_v4().to_string();
        let span = tracing::info_span!("stream message", otel.name = %format!("stream {stream}"), flow = %flow, stream = %stream, seq);
        let traceparent = TraceContext::of_or(&span, None).traceparent();
        let event_id = format!("{epoch}/{seq}");
        let insert = NewEventRun {
            run: new_run(&run_id, flow, row.version, &def, &trigger, &traceparent),
            source: &source,
            event_id: &event_id,
        };
        let answer = self
            .store()
            .start_event_runs(&[], &[insert], now_ms())
            .await?
            .pop()
            .ok_or_else(|| FlowError::Conflict("the store started no run".into()))?;
        if !answer.duplicate {
            let _entered = span.enter();
            tracing::info!(flow, run = %answer.run, stream, seq, "run started by a stream message");
            self.runtime.metrics().record_runs_started(flow, 1);
            self.wake.notify_one();
        }
        Ok(Some(EventRun {
            flow: flow.to_string(),
            run: answer.run,
            event: event_id,
            duplicate: answer.duplicate,
        }))
    }
}

/// The run's trigger for a message: the message itself when it is a
/// structured CloudEvent, else a CloudEvent that carries it.
fn trigger_event(source: &str, seq: u64, subject: &str, payload: &[u8]) -> Value {
    let json: Option<Value> = serde_json::from_slice(payload).ok();
    if let Some(v) = &json
        && v.get("specversion").and_then(Value::as_str) == Some("1.0")
        && ["id", "source", "type"].iter().all(|k| {
            v.get(k)
                .and_then(Value::as_str)
                .is_some_and(|t| !t.is_empty())
        })
    {
        return v.clone();
    }
    let data = json.unwrap_or_else(|| Value::String(String::from_utf8_lossy(payload).into_owned()));
    let event = CloudEvent::new(
        seq.to_string(),
        source.to_string(),
        "dev.junction.stream.message".into(),
        Some(subject.to_string()),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        data,
    );
    serde_json::to_value(event).unwrap_or(Value::Null)
}

/// Keeps one consumer task per stream trigger, as deploys change them.
async fn supervise(weak: Weak<Flows>, js: jetstream::Context) {
    let mut running: HashMap<String, (Listener, tokio::task::JoinHandle<()>)> = HashMap::new();
    loop {
        let Some(flows) = weak.upgrade() else {
            for (_, (_, task)) in running {
                task.abort();
            }
            return;
        };
        match flows.listeners().await {
            Ok(wanted) => {
                running.retain(|flow, (listener, task)| {
                    let keep = !task.is_finished() && wanted.contains(listener);
                    if !keep {
                        tracing::info!(flow, stream = %listener.stream, "stopped consuming a stream");
                        task.abort();
                    }
                    keep
                });
                for listener in wanted {
                    if running.contains_key(&listener.flow) {
                        continue;
                    }
                    let task = tokio::spawn(consume(weak.clone(), js.clone(), listener.clone()));
                    running.insert(listener.flow.clone(), (listener, task));
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the stream triggers failed"),
        }
        let deployed = flows.clone();
        drop(flows);
        tokio::select! {
            () = deployed.streams.deployed.notified() => {}
            () = tokio::time::sleep(RESCAN) => {}
        }
    }
}

/// Consumes `listener`'s stream until the flows are gone, starting over
/// with a backoff when NATS fails.
async fn consume(weak: Weak<Flows>, js: jetstream::Context, listener: Listener) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match consume_once(&weak, &js, &listener, &mut backoff).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(flow = %listener.flow, stream = %listener.stream, error = %e, retry_in_ms = backoff.as_millis() as u64, "consuming the stream failed; its messages wait in JetStream");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

async fn consume_once(
    weak: &Weak<Flows>,
    js: &jetstream::Context,
    listener: &Listener,
    backoff: &mut Duration,
) -> std::result::Result<(), String> {
    let mut stream = js.get_stream(&listener.stream).await.map_err(|e| {
        format!(
            "stream `{}`: {e} (create it, or correct `trigger.stream`)",
            listener.stream
        )
    })?;
    let epoch = stream
        .info()
        .await
        .map_err(|e| e.to_string())?
        .created
        .unix_timestamp_nanos();
    let config = listener.config();
    let durable = listener.durable();
    let consumer: consumer::PullConsumer = match stream.get_consumer(&durable).await {
        Ok(mut existing) => {
            let info = existing.info().await.map_err(|e| e.to_string())?;
            let (filter, ack_wait) = (info.config.filter_subject.clone(), info.config.ack_wait);
            if filter != config.filter_subject {
                // The flow now listens to another subject: a new consumer.
                stream
                    .delete_consumer(&durable)
                    .await
                    .map_err(|e| format!("replacing consumer `{durable}`: {e}"))?;
                stream
                    .create_consumer(config)
                    .await
                    .map_err(|e| format!("creating consumer `{durable}`: {e}"))?
            } else if ack_wait != config.ack_wait {
                stream
                    .create_consumer(config)
                    .await
                    .map_err(|e| format!("updating consumer `{durable}`: {e}"))?
            } else {
                existing
            }
        }
        Err(_) => stream
            .create_consumer(config)
            .await
            .map_err(|e| format!("creating consumer `{durable}`: {e}"))?,
    };
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    tracing::info!(flow = %listener.flow, stream = %listener.stream, consumer = %durable, "consuming a stream");
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| e.to_string())?;
        let Some(flows) = weak.upgrade() else {
            return Ok(());
        };
        let seq = message.info().map_err(|e| e.to_string())?.stream_sequence;
        let started = flows
            .start_run_for_message(
                &listener.flow,
                &listener.stream,
                epoch,
                seq,
                message.subject.as_str(),
                &message.payload,
            )
            .await;
        match started {
            // Acknowledged only now that the run is committed.
            Ok(_) => {
                *backoff = Duration::from_millis(500);
                if let Err(e) = message.double_ack().await {
                    tracing::warn!(flow = %listener.flow, seq, error = %e, "acknowledging a stream message failed; it is delivered again and finds its run");
                }
            }
            Err(e) => {
                tracing::warn!(flow = %listener.flow, seq, error = %e, "starting a run for a stream message failed; it is delivered again");
                let _ = message.ack_with(AckKind::Nak(Some(*backoff))).await;
            }
        }
    }
    Err("the consumer's messages ended".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_subjects_are_checked() {
        assert!(check("CRM_DEALS", Some("crm.deals.>"), 30_000).is_empty());
        assert!(check("CRM", Some("crm.*.won"), 30_000).is_empty());
        assert_eq!(check("crm deals", None, 30_000).len(), 1);
        assert_eq!(check("CRM", Some("crm.>.won"), 30_000).len(), 1);
        assert_eq!(check("CRM", Some("crm..won"), 30_000).len(), 1);
        assert_eq!(check("CRM", None, 5).len(), 1);
    }

    #[test]
    fn a_cloudevent_is_the_trigger_and_anything_else_is_wrapped() {
        let ce = serde_json::json!({"specversion": "1.0", "id": "d-1", "source": "/crm", "type": "deal.won", "time": "2026-12-07T10:00:00Z", "datacontenttype": "application/json", "data": {"deal": 1}});
        let bytes = serde_json::to_vec(&ce).unwrap();
        assert_eq!(trigger_event("/jetstream/S", 4, "crm.deals", &bytes), ce);
        let wrapped = trigger_event("/jetstream/S", 5, "crm.deals", br#"{"deal": 2}"#);
        assert_eq!(wrapped["type"], "dev.junction.stream.message");
        assert_eq!(wrapped["id"], "5");
        assert_eq!(wrapped["subject"], "crm.deals");
        assert_eq!(wrapped["data"]["deal"], 2);
        let text = trigger_event("/jetstream/S", 6, "crm.deals", b"plain");
        assert_eq!(text["data"], "plain");
    }
}
