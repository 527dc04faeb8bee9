//! Starting runs (by hand or by webhook events) and reading them.

use serde_json::Value;

use junction_store::{NewEventRun, RunRow};

use crate::WaitingView;

use junction_runtime::trace::TraceContext;

use super::{
    EventRun, FlowError, Flows, Result, RunView, StepView, Trigger, definition, new_run, now_ms,
    rfc3339,
};

impl Flows {
    /// Starts a run of the current version of flow `name` with `trigger` as
    /// its event; returns the run id. The run is committed before this
    /// returns. Its business transaction continues `trace` (the request's
    /// trace context), else starts a trace of its own.
    pub async fn start_run(
        &self,
        name: &str,
        trigger: Value,
        trace: Option<&TraceContext>,
    ) -> Result<String> {
        let current = self
            .store()
            .current_flow(name)
            .await?
            .ok_or_else(|| FlowError::NotFound(format!("no flow named `{name}`")))?;
        let def = definition::parse(&current.source).map_err(FlowError::Invalid)?;
        let id = uuid::Uuid::new_v4().to_string();
        let trigger = trigger.to_string();
        let traceparent = run_traceparent(trace);
        self.store()
            .start_run(&new_run(
                &id,
                name,
                current.version,
                &def,
                &trigger,
                &traceparent,
            ))
            .await?;
        tracing::info!(flow = %name, run = %id, trace_id = %trace_id_of(&traceparent), "run started");
        self.runtime.metrics().record_runs_started(name, 1);
        self.wake.notify_one();
        Ok(id)
    }

    /// Starts one run per event and flow whose trigger is that event type
    /// from `connection`, at most once per event (its `source` and `id`) and
    /// flow however often it is delivered. Everything is committed before
    /// this returns, so a webhook answered 2xx is not lost. The runs'
    /// business transactions continue `trace` (the webhook request's).
    pub async fn start_runs_for_events(
        &self,
        connection: &str,
        events: &[junction_runtime::inbound::WebhookEvent],
        trace: Option<&TraceContext>,
    ) -> Result<Vec<EventRun>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.store().current_flows().await?;
        let mut listeners = Vec::new();
        for row in rows {
            let Ok(def) = definition::parse(&row.source) else {
                continue;
            };
            if let Trigger::Event {
                connection: c,
                event,
            } = &def.trigger
                && c == connection
            {
                let event = event.clone();
                listeners.push((row.name, row.version, event, def));
            }
        }
        if listeners.is_empty() {
            // Passed on all the same: to the outbox, once per source and id.
            self.store().record_events(events).await?;
            return Ok(Vec::new());
        }
        let now = now_ms();
        let traceparent = run_traceparent(trace);
        // One run per event and listening flow, each with a new id.
        let mut planned = Vec::new();
        for event in events {
            for (flow, version, event_type, def) in &listeners {
                if *event_type != event.event_type {
                    continue;
                }
                let run_id = uuid::Uuid::new_v4().to_string();
                let trigger = serde_json::to_value(event)?.to_string();
                planned.push((event, flow, *version, def, run_id, trigger));
            }
        }
        let inserts: Vec<NewEventRun<'_>> = planned
            .iter()
            .map(|(event, flow, version, def, run_id, trigger)| NewEventRun {
                run: new_run(run_id, flow, *version, def, trigger, &traceparent),
                source: &event.source,
                event_id: &event.id,
            })
            .collect();
        let answers = self.store().start_event_runs(events, &inserts, now).await?;
        let started: Vec<EventRun> = planned
            .iter()
            .zip(answers)
            .map(|((event, flow, ..), answer)| EventRun {
                flow: (*flow).clone(),
                run: answer.run,
                event: event.id.clone(),
                duplicate: answer.duplicate,
            })
            .collect();
        for run in started.iter().filter(|r| !r.duplicate) {
            self.runtime.metrics().record_runs_started(&run.flow, 1);
        }
        if started.iter().any(|r| !r.duplicate) {
            tracing::info!(
                connection,
                runs = started.len(),
                "runs started by webhook events"
            );
            self.wake.notify_one();
        }
        Ok(started)
    }

    /// Runs, newest first, filtered by flow and status.
    pub async fn runs(
        &self,
        flow: Option<&str>,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunView>> {
        self.runs_created(flow, status, None, None, limit).await
    }

    /// As [`runs`](Self::runs), of those created at or after `since` and
    /// before `until` (ms since the epoch) when given.
    pub async fn runs_created(
        &self,
        flow: Option<&str>,
        status: Option<&str>,
        since: Option<i64>,
        until: Option<i64>,
        limit: u32,
    ) -> Result<Vec<RunView>> {
        let rows = self
            .store()
            .runs_created(flow, status, since, until, limit)
            .await?;
        rows.into_iter().map(run_view).collect()
    }

    /// One run with its steps.
    pub async fn run(&self, id: &str) -> Result<RunView> {
        let row = self
            .store()
            .run(id)
            .await?
            .ok_or_else(|| FlowError::NotFound(format!("no run with id `{id}`")))?;
        let mut run = run_view(row)?;
        let steps = self.store().run_steps(id).await?;
        let json = |t: Option<String>| -> Result<Option<Value>> {
            Ok(t.map(|t| serde_json::from_str(&t)).transpose()?)
        };
        let mut views = Vec::new();
        for r in steps {
            views.push(StepView {
                id: r.id,
                status: r.status,
                attempts: r.attempts,
                compensation_attempts: r.compensation_attempts,
                errors: serde_json::from_str(&r.errors)?,
                input: json(r.input)?,
                output: json(r.output)?,
                idempotency_key: r.idempotency_key,
                started_at: r.started_at.map(rfc3339),
                finished_at: r.finished_at.map(rfc3339),
                compensated_at: r.compensated_at.map(rfc3339),
            });
        }
        run.steps = Some(views);
        let signals = self.store().run_signals(id).await?;
        run.signals = Some(
            signals
                .into_iter()
                .map(super::wait::signal_view)
                .collect::<Result<_>>()?,
        );
        Ok(run)
    }
}

fn run_view(r: RunRow) -> Result<RunView> {
    Ok(RunView {
        id: r.id,
        flow: r.flow,
        flow_version: r.flow_version,
        status: r.status,
        trigger: serde_json::from_str(&r.trigger)?,
        error: r.error,
        failed_step: r.failed_step,
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
        finished_at: r.finished_at.map(rfc3339),
        trace_id: r.traceparent.as_deref().map(trace_id_of),
        parked_on: r.parked_on,
        waiting_for: r.waiting_for.map(|signal| WaitingView {
            signal,
            deadline: (r.next_at != i64::MAX).then(|| rfc3339(r.next_at)),
        }),
        signals: None,
        steps: None,
    })
}

/// The `traceparent` a new run stores, the parent of its spans: `trace`
/// (the request's), else the current span's, else a new trace.
fn run_traceparent(trace: Option<&TraceContext>) -> String {
    trace
        .cloned()
        .unwrap_or_else(|| TraceContext::of_or(&tracing::Span::current(), None))
        .traceparent()
}

/// The trace id of a stored `traceparent` (empty when it is not one).
pub(crate) fn trace_id_of(traceparent: &str) -> String {
    TraceContext::parse(traceparent)
        .map(|t| t.trace_id())
        .unwrap_or_default()
}
