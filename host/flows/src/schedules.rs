//! Schedule triggers: starting the runs of flows whose schedule is due.

use junction_runtime::trace::TraceContext;

use super::{Flows, Result, Trigger, definition, new_run, next_fire, now_ms, rfc3339};

impl Flows {
    /// Starts a run of every flow whose schedule is due, once per due time
    /// however many hosts share the store; missed times during downtime fire
    /// once, not once each. Returns how many runs started.
    pub(crate) async fn fire_schedules(&self) -> Result<usize> {
        let now = now_ms();
        let due = self.store().due_schedules(now).await?;
        let mut fired = 0;
        for schedule in &due {
            let flow = &schedule.flow;
            let due_at = schedule.next_at;
            let Ok(def) = definition::parse(&schedule.source) else {
                continue;
            };
            let Trigger::Schedule { cron } = &def.trigger else {
                continue;
            };
            // Far in the future when it never fires again: the row stays, inert.
            let next = next_fire(cron, now).unwrap_or(i64::MAX);
            let id = uuid::Uuid::new_v4().to_string();
            let trigger = serde_json::json!({"type": "schedule", "scheduled_at": rfc3339(due_at)})
                .to_string();
            // The root of the run's business transaction: the schedule firing.
            let span = tracing::info_span!("schedule", otel.name = %format!("schedule {flow}"), flow = %flow);
            let traceparent = TraceContext::of_or(&span, None).traceparent();
            let run = new_run(&id, flow, schedule.version, &def, &trigger, &traceparent);
            if !self.store().fire_schedule(due_at, next, &run).await? {
                continue;
            }
            let _entered = span.enter();
            tracing::info!(flow = %flow, run = %id, "scheduled run started");
            self.runtime.metrics().record_runs_started(flow, 1);
            fired += 1;
        }
        Ok(fired)
    }
}
