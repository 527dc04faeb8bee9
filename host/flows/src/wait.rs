//! Wait steps: a run that reaches one calls its `notify` operation, then
//! parks in the store (no lease, no worker) until a signal of the step's
//! name arrives or its deadline passes. A signal carries a decision, who
//! sent it and when; the step's output is that decision, so later steps
//! branch on it with `when`. A passed deadline fails the step, goes on with
//! `expired`, or escalates and waits again, as the step says.

use serde::Serialize;
use serde_json::{Value, json};

use super::definition::{Call, FlowDef, OnDeadline, OnReject, StepDef, Wait};
use super::exec::{Failure, Next, RunRow, StepRow, classify, lease_held};
use super::step::FailedAttempt;
use super::{FlowError, Flows, Result, jq, now_ms};
use junction_runtime::runtime::CallOptions;
use junction_store::events::types;
use junction_store::{CloudEvent, NewSignal, RunWrite, SignalOutcome, SignalRow};

/// The CloudEvents types of waits.
pub mod event_types {
    /// A run started waiting for a signal (its notify call was made).
    pub const REQUESTED: &str = "dev.junction.approval.requested";
    /// A signal arrived: who decided what.
    pub const DECIDED: &str = "dev.junction.approval.decided";
    /// The deadline passed; the escalation was called and the run waits again.
    pub const ESCALATED: &str = "dev.junction.approval.escalated";
}

/// What a waiting run waits for.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WaitingView {
    /// The signal's name: `POST /v1/runs/{id}/signals/{signal}`.
    pub signal: String,
    /// When the deadline passes (RFC 3339), if there is one.
    pub deadline: Option<String>,
}

/// A signal a run received.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SignalView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub signal: String,
    /// The step that waited for it.
    pub step: String,
    /// `approve` or `reject`.
    pub decision: String,
    /// Free text.
    pub comment: Option<String>,
    /// Data for the steps after it.
    pub data: Option<Value>,
    /// Who sent it (the API token's name).
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
}

pub(crate) fn signal_view(s: SignalRow) -> Result<SignalView> {
    Ok(SignalView {
        id: s.id,
        signal: s.name,
        step: s.step_id,
        decision: s.decision,
        comment: s.comment,
        data: s.data.map(|d| serde_json::from_str(&d)).transpose()?,
        by: s.actor,
        at: super::rfc3339(s.at),
    })
}

impl Flows {
    /// A run reaches wait step `row`: its notify call (retried as the
    /// step's calls are), then the wait.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn enter_wait(
        &self,
        worker: &str,
        run_id: &str,
        run: &RunRow,
        def: &FlowDef,
        steps: &[StepRow],
        row: &StepRow,
        spec: &StepDef,
        wait: &Wait,
        ctx: &Value,
    ) -> Result<Next> {
        let attempt = row.attempts + 1;
        if let Some(call) = &wait.notify
            && let Err(failure) = self
                .tell(call, "notify", ctx, run_id, run, row, wait, attempt)
                .await
        {
            return self
                .step_failed(
                    worker,
                    run_id,
                    run,
                    def,
                    steps,
                    FailedAttempt::new(row, attempt, None, Some(spec.retry), failure),
                )
                .await
                .map(Next::reload_if);
        }
        self.start_waiting(worker, run_id, run, row, wait, event_types::REQUESTED)
            .await
    }

    /// Parks the run until a signal or the deadline, from now.
    async fn start_waiting(
        &self,
        worker: &str,
        run_id: &str,
        run: &RunRow,
        row: &StepRow,
        wait: &Wait,
        event_type: &str,
    ) -> Result<Next> {
        let now = now_ms();
        let deadline = wait
            .deadline_ms
            .map(|ms| now.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX / 2)));
        let data = json!({
            "run": run_id,
            "flow": run.flow,
            "step": row.id,
            "signal": wait.signal,
            "deadline": deadline.map(super::rfc3339),
        });
        let event = CloudEvent::of_run(event_type, &run.flow, run_id, data);
        let fence = self.fence(worker, run_id, false);
        let held = self
            .store()
            .start_wait(&fence, &row.id, &wait.signal, deadline, &event)
            .await?;
        if lease_held(held, worker, run_id) {
            tracing::info!(run = %run_id, step = %row.id, signal = %wait.signal, "waiting for a signal");
        }
        Ok(Next::Stop)
    }

    /// Calls `call` (`notify` or `escalate`) of a wait step.
    #[allow(clippy::too_many_arguments)]
    async fn tell(
        &self,
        call: &Call,
        what: &str,
        ctx: &Value,
        run_id: &str,
        run: &RunRow,
        row: &StepRow,
        wait: &Wait,
        attempt: i64,
    ) -> std::result::Result<(), Failure> {
        let input = match &call.input {
            Some(code) => jq::first(code, ctx)
                .map_err(|e| Failure::permanent("expression", format!("wait.{what}.input: {e}")))?,
            None => json!({"run": run_id, "flow": run.flow, "step": row.id, "signal": wait.signal}),
        };
        let options = CallOptions {
            idempotency_key: Some(format!("{}:{what}", row.key)),
            run_id: Some(run_id.to_string()),
            attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
            trace: run.trace.clone(),
        };
        self.runtime
            .invoke(
                &call.connection,
                &call.operation,
                &input.to_string(),
                options,
            )
            .await
            .map(|_| ())
            .map_err(classify)
    }

    /// A waiting run was claimed: a signal arrived, or the deadline passed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn resume_wait(
        &self,
        worker: &str,
        run_id: &str,
        run: &RunRow,
        def: &FlowDef,
        steps: &mut [StepRow],
        index: usize,
        wait: &Wait,
        ctx: &Value,
    ) -> Result<Next> {
        let row = steps[index].clone();
        let attempt = row.attempts + 1;
        if let Some(signal) = self.store().pending_signal(run_id, &row.id).await? {
            if signal.decision == "reject" && wait.on_reject == OnReject::Fail {
                let comment = signal
                    .comment
                    .as_deref()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                let failure = Failure::permanent(
                    "rejected",
                    format!(
                        "`{}` was rejected by {}{comment}",
                        signal.name, signal.actor
                    ),
                );
                return self
                    .step_failed(
                        worker,
                        run_id,
                        run,
                        def,
                        steps,
                        FailedAttempt::new(&row, attempt, None, None, failure),
                    )
                    .await
                    .map(Next::reload_if);
            }
            let output = json!({
                "decision": signal.decision,
                "comment": signal.comment,
                "data": signal.data.as_deref().map(serde_json::from_str::<Value>).transpose()?,
                "by": signal.actor,
                "at": super::rfc3339(signal.at),
                "signal": signal.name,
            });
            return self
                .end_wait(worker, run_id, run, steps, index, output, Some(&signal.id))
                .await;
        }
        match wait.on_deadline {
            OnDeadline::Fail => {
                let failure = Failure::permanent(
                    "deadline",
                    format!(
                        "no `{}` signal arrived within {} ms",
                        wait.signal,
                        wait.deadline_ms.unwrap_or_default()
                    ),
                );
                self.step_failed(
                    worker,
                    run_id,
                    run,
                    def,
                    steps,
                    FailedAttempt::new(&row, attempt, None, None, failure),
                )
                .await
                .map(Next::reload_if)
            }
            OnDeadline::Continue => {
                let output = json!({
                    "decision": "expired",
                    "comment": null,
                    "data": null,
                    "by": null,
                    "at": super::rfc3339(now_ms()),
                    "signal": wait.signal,
                });
                self.end_wait(worker, run_id, run, steps, index, output, None)
                    .await
            }
            OnDeadline::Escalate => {
                if let Some(call) = &wait.escalate
                    && let Err(failure) = self
                        .tell(call, "escalate", ctx, run_id, run, &row, wait, attempt)
                        .await
                {
                    // The wait goes on: the signal is still what decides.
                    tracing::warn!(run = %run_id, step = %row.id, error = %failure.message, "the escalation call failed; waiting for another deadline");
                }
                self.start_waiting(worker, run_id, run, &row, wait, event_types::ESCALATED)
                    .await
            }
        }
    }

    /// The wait step at `index` completes with `output`, consuming `signal`.
    #[allow(clippy::too_many_arguments)]
    async fn end_wait(
        &self,
        worker: &str,
        run_id: &str,
        run: &RunRow,
        steps: &mut [StepRow],
        index: usize,
        output: Value,
        signal: Option<&str>,
    ) -> Result<Next> {
        let now = now_ms();
        let step = steps[index].id.clone();
        let data =
            json!({"run": run_id, "flow": run.flow, "step": step, "decision": output["decision"]});
        let writes = [
            RunWrite::CompleteStep {
                step: &step,
                output: output.to_string(),
                now,
            },
            RunWrite::EndWait { signal, now },
            RunWrite::Emit(CloudEvent::of_run(
                types::STEP_COMPLETED,
                &run.flow,
                run_id,
                data,
            )),
        ];
        if !self.commit_fenced(worker, run_id, false, writes).await? {
            return Ok(Next::Stop);
        }
        tracing::info!(run = %run_id, step = %step, decision = %output["decision"], "wait ended");
        steps[index].status = "completed".into();
        steps[index].output = Some(output);
        Ok(Next::Continue)
    }

    /// Sends signal `name` to run `run_id` for `actor`: `decision` is
    /// `approve` or `reject`. A run that does not wait for it now is a
    /// conflict, naming what it waits for, if anything.
    pub async fn signal(
        &self,
        run_id: &str,
        name: &str,
        decision: &str,
        comment: Option<&str>,
        data: Option<&Value>,
        actor: &str,
    ) -> Result<SignalView> {
        let signal = NewSignal {
            name,
            decision,
            comment,
            data,
            actor,
        };
        let now = now_ms();
        let event_of = |flow: &str, step: &str| {
            let data = json!({
                "run": run_id, "flow": flow, "step": step, "signal": name,
                "decision": decision, "comment": comment, "by": actor,
            });
            CloudEvent::of_run(event_types::DECIDED, flow, run_id, data)
        };
        match self
            .store()
            .signal_run(run_id, &signal, now, event_of)
            .await?
        {
            SignalOutcome::Recorded { id, step, flow } => {
                tracing::info!(run = %run_id, flow = %flow, step = %step, signal = name, decision, by = actor, "signal received");
                self.wake.notify_one();
                Ok(SignalView {
                    id,
                    signal: name.to_string(),
                    step,
                    decision: decision.to_string(),
                    comment: comment.map(str::to_string),
                    data: data.cloned(),
                    by: actor.to_string(),
                    at: super::rfc3339(now),
                })
            }
            SignalOutcome::NotFound => {
                Err(FlowError::NotFound(format!("no run with id `{run_id}`")))
            }
            SignalOutcome::NotWaiting {
                status,
                waiting_for,
            } => Err(FlowError::Conflict(match waiting_for {
                Some(other) => {
                    format!("run `{run_id}` waits for the signal `{other}`, not `{name}`")
                }
                None => format!(
                    "run `{run_id}` is not waiting for a signal (it is {status}); a signal is accepted only while a wait step waits for it"
                ),
            })),
        }
    }
}
