//! Running a step: one forward move of a run, its call, and what a failed
//! attempt leads to (a retry, the saga, or a dead letter).

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::branches::MAX_BRANCHES;
use super::definition::{Action, FlowDef, Retry, StepDef};
use super::exec::{Failure, Next, RunRow, StepRow, backoff, classify, error_entry, lease_held};
use super::graph::Graph;
use super::{FlowError, Flows, Result, StepError, jq, now_ms, xref};
use junction_runtime::runtime::CallOptions;
use junction_store::events::types;
use junction_store::{AfterFailure, CloudEvent, NewDeadLetter, RunWrite};
use tracing::Instrument;

/// The context jq expressions see: the trigger, the outputs of the steps
/// that completed (`null` for skipped ones), the run. `steps` gives each
/// step's id, status and output.
pub(crate) fn jq_context<'a>(
    run_id: &str,
    flow: &str,
    trigger: Value,
    steps: impl IntoIterator<Item = (&'a str, &'a str, Option<Value>)>,
) -> Value {
    let mut outputs = Map::new();
    for (id, status, output) in steps {
        match status {
            "completed" => {
                outputs.insert(id.to_string(), output.unwrap_or(Value::Null));
            }
            "skipped" => {
                outputs.insert(id.to_string(), Value::Null);
            }
            _ => {}
        }
    }
    json!({"trigger": trigger, "steps": outputs, "run": {"id": run_id, "flow": flow}})
}

impl Flows {
    /// The context jq expressions see during `run`.
    fn context(run_id: &str, run: &RunRow, steps: &[StepRow]) -> Value {
        let steps = steps
            .iter()
            .map(|s| (s.id.as_str(), s.status.as_str(), s.output.clone()));
        jq_context(run_id, &run.flow, run.trigger.clone(), steps)
    }

    /// One forward move: the step that may move now, or, when several may
    /// (branches that need nothing of each other), all of them at once.
    pub(crate) async fn forward(
        &self,
        worker: &str,
        run_id: &str,
        run: &RunRow,
        def: &FlowDef,
        graph: &Graph,
        steps: &mut [StepRow],
    ) -> Result<Next> {
        let mut status = vec!["pending"; def.steps.len()];
        for s in steps.iter() {
            if let Some(at) = status.get_mut(s.position) {
                *at = s.status.as_str();
            }
        }
        let ready: Vec<usize> = graph
            .ready(&status)
            .into_iter()
            .filter_map(|p| steps.iter().position(|s| s.position == p))
            .collect();
        if ready.is_empty() {
            if let Some(stuck) = steps.iter().find(|s| unfinished(&s.status)) {
                return Err(FlowError::Invalid(format!(
                    "step `{}` of run `{run_id}` can never start: a step it needs did not complete",
                    stuck.id
                )));
            }
            let done = RunWrite::CompleteRun { now: now_ms() };
            let data = json!({"run": run_id, "flow": run.flow, "flow_version": run.flow_version});
            let event = CloudEvent::of_run(types::RUN_COMPLETED, &run.flow, run_id, data);
            let writes = [done, RunWrite::Emit(event)];
            if self.commit_fenced(worker, run_id, false, writes).await? {
                tracing::info!(run = %run_id, flow = %run.flow, "run completed");
                let m = self.runtime.metrics();
                m.record_run_finished(&run.flow, "completed", run.created_at);
            }
            return Ok(Next::Stop);
        };
        // A wait parks the run: the steps that call something go first.
        let is_wait = |i: &usize| {
            matches!(
                def.steps.get(steps[*i].position).and_then(StepDef::action),
                Some(Action::Wait(_))
            )
        };
        let calls: Vec<usize> = ready
            .iter()
            .copied()
            .filter(|i| !is_wait(i))
            .take(MAX_BRANCHES)
            .collect();
        if calls.len() > 1 {
            return self
                .branches(worker, run_id, run, def, graph, steps, &calls)
                .await;
        }
        let index = calls.first().or(ready.first()).copied().unwrap_or(0);
        match self
            .move_step(worker, run_id, run, def, graph, steps, index)
            .await?
        {
            Moved::Next(next) => Ok(next),
            Moved::Failed(failed) => self
                .step_failed(worker, run_id, run, def, steps, *failed)
                .await
                .map(Next::reload_if),
            Moved::Park(parked) => {
                self.park(worker, run_id, &parked).await?;
                Ok(Next::Stop)
            }
        }
    }

    /// Moves step `steps[index]` one attempt on: skips it, calls it, or
    /// makes its wait; `steps` is kept up to date in memory. A failed
    /// attempt or an open circuit is returned, not yet written.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn move_step(
        &self,
        worker: &str,
        run_id: &str,
        run: &RunRow,
        def: &FlowDef,
        graph: &Graph,
        steps: &mut [StepRow],
        index: usize,
    ) -> Result<Moved> {
        let row = steps[index].clone();
        let row = &row;
        let Some(spec) = def.steps.get(row.position) else {
            return Err(FlowError::Invalid(format!(
                "step `{}` is not in version {} of flow `{}`",
                row.id, run.flow_version, run.flow
            )));
        };
        let ctx = Self::context(run_id, run, steps);
        if let (Some(Action::Wait(wait)), "waiting") = (spec.action(), row.status.as_str()) {
            return self
                .resume_wait(worker, run_id, run, def, steps, index, wait, &ctx)
                .await
                .map(Moved::Next);
        }
        let attempt = row.attempts + 1;
        // Conditions and inputs are computed once per attempt; an expression
        // error fails the step for good (it would fail the same way again).
        let prepared: std::result::Result<Option<Value>, Failure> = (|| {
            if let Some(when) = &spec.when
                && !jq::truthy(when, &ctx)
                    .map_err(|e| Failure::permanent("expression", format!("when: {e}")))?
            {
                return Ok(None);
            }
            if let Some(input) = &row.input_override {
                return Ok(Some(input.clone()));
            }
            if let Some(Action::Map(_) | Action::Wait(_) | Action::Lookup(_)) = spec.action() {
                return Ok(Some(ctx.clone()));
            }
            match &spec.input {
                Some(code) => jq::first(code, &ctx)
                    .map(Some)
                    .map_err(|e| Failure::permanent("expression", format!("input: {e}"))),
                None => Ok(Some(previous_output(run, steps, graph, row.position))),
            }
        })();
        let input = match prepared {
            Ok(None) => {
                let skip = RunWrite::SkipStep {
                    step: &row.id,
                    now: now_ms(),
                };
                if !self.commit_fenced(worker, run_id, false, [skip]).await? {
                    return Ok(Moved::Next(Next::Stop));
                }
                steps[index].status = "skipped".into();
                return Ok(Moved::Next(Next::Continue));
            }
            Ok(Some(input)) => input,
            Err(failure) => {
                return Ok(Moved::failed(row, attempt, None, None, failure));
            }
        };
        if let Some(Action::Wait(wait)) = spec.action() {
            return self
                .enter_wait(worker, run_id, run, def, steps, row, spec, wait, &input)
                .await
                .map(Moved::Next);
        }
        // A write the governance refuses is not made, nor retried.
        if spec.writes.is_some()
            && let Err(failure) = self
                .check_writes(def, spec, &xref::with_io(&ctx, &input, None))
                .await
        {
            return Ok(Moved::failed(row, attempt, Some(input), None, failure));
        }
        // A system whose circuit is open is not called: the run waits,
        // parked, until the circuit closes.
        let circuit = match spec.action() {
            Some(Action::Invoke { connection, .. }) => Some(connection),
            _ => None,
        };
        if let Some(connection) = circuit
            && self.circuit_open(connection).await?
        {
            return Ok(Moved::Park(Box::new(Parked {
                row: row.clone(),
                attempts: row.attempts,
                errors: row.errors.clone(),
                connection: connection.to_string(),
            })));
        }
        // Record the attempt before making it: a crash during the call
        // still counts it, and the next worker sees the input.
        let running = RunWrite::StartAttempt {
            step: &row.id,
            attempt,
            input: input.to_string(),
            now: now_ms(),
        };
        if !self.commit_fenced(worker, run_id, true, [running]).await? {
            return Ok(Moved::Next(Next::Stop));
        }
        steps[index].status = "running".into();
        steps[index].attempts = attempt;
        steps[index].input = Some(input.clone());
        let span = tracing::info_span!(
            "step",
            otel.name = %format!("step {}", row.id),
            step = %row.id,
            attempt,
            outcome = tracing::field::Empty,
        );
        let began = Instant::now();
        let call = self.call(spec, &input, &row.key, run_id, run, attempt);
        let result = async {
            match spec.deadline_ms {
                Some(ms) => tokio::time::timeout(Duration::from_millis(ms), call)
                    .await
                    .unwrap_or_else(|_| {
                        Err(Failure {
                            kind: "timeout",
                            message: format!(
                                "the step did not finish within its deadline of {ms} ms"
                            ),
                            retryable: true,
                            retry_after_ms: None,
                        })
                    }),
                None => call.await,
            }
        }
        .instrument(span.clone())
        .await;
        let outcome = result.as_ref().map_or_else(|f| f.kind, |_| "ok");
        span.record("outcome", outcome);
        let m = self.runtime.metrics();
        m.record_step(&run.flow, &row.id, outcome, began.elapsed());
        if let (Some(connection), Err(failure)) = (circuit, &result)
            && self.circuit_after_call(connection, Some(failure)).await?
        {
            // The circuit is open (now, or already): park rather than burn
            // a retry; this attempt does not count against the step's.
            let mut errors = row.errors.clone();
            errors.push(error_entry("parked", attempt, failure));
            return Ok(Moved::Park(Box::new(Parked {
                row: row.clone(),
                attempts: attempt,
                errors,
                connection: connection.to_string(),
            })));
        }
        let result = result.and_then(|output| {
            if spec.record.is_empty() {
                return Ok((output, Vec::new()));
            }
            let ctx = xref::with_io(&ctx, &input, Some(&output));
            let records = xref::records(&row.id, spec.connection.as_deref(), &spec.record, &ctx)?;
            Ok((output, records))
        });
        match result {
            Ok((output, records)) => {
                let completed = RunWrite::CompleteStep {
                    step: &row.id,
                    output: output.to_string(),
                    now: now_ms(),
                };
                let data =
                    json!({"run": run_id, "flow": run.flow, "step": row.id, "attempt": attempt});
                let event = CloudEvent::of_run(types::STEP_COMPLETED, &run.flow, run_id, data);
                let now = now_ms();
                let xrefs = records.into_iter().map(|xref| RunWrite::Xref {
                    flow: &run.flow,
                    xref,
                    now,
                });
                let writes = [completed, RunWrite::Emit(event)].into_iter().chain(xrefs);
                if !self.commit_fenced(worker, run_id, false, writes).await? {
                    return Ok(Moved::Next(Next::Stop));
                }
                steps[index].status = "completed".into();
                steps[index].output = Some(output);
                steps[index].finished_at = Some(now_ms());
                if let Some(connection) = circuit
                    && let Err(e) = self.circuit_after_call(connection, None).await
                {
                    tracing::warn!(connection, error = %e, "resetting the circuit's failure count failed");
                }
                Ok(Moved::Next(Next::Continue))
            }
            Err(failure) => Ok(Moved::failed(
                row,
                attempt,
                Some(input),
                Some(spec.retry),
                failure,
            )),
        }
    }

    /// Parks run `run_id` on the open circuit of `parked.connection`: the
    /// step is pending with its attempts and errors, and the run waits
    /// until the circuit closes.
    pub(crate) async fn park(&self, worker: &str, run_id: &str, parked: &Parked) -> Result<()> {
        let Parked {
            row,
            attempts,
            errors,
            connection,
        } = parked;
        let errors = serde_json::to_string(errors)?;
        let fence = self.fence(worker, run_id, false);
        let held = self
            .store()
            .park_run(&fence, &row.id, *attempts, &errors, connection)
            .await?;
        if lease_held(held, worker, run_id) {
            tracing::info!(run = %run_id, step = %row.id, connection, "the connection's circuit is open; run parked until it closes");
        }
        Ok(())
    }

    /// Makes one call of a step.
    async fn call(
        &self,
        spec: &StepDef,
        input: &Value,
        key: &str,
        run_id: &str,
        run: &RunRow,
        attempt: i64,
    ) -> std::result::Result<Value, Failure> {
        let options = CallOptions {
            idempotency_key: Some(key.to_string()),
            run_id: Some(run_id.to_string()),
            attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
            trace: run.trace.clone(),
        };
        let text = input.to_string();
        let parse = |json: &str| {
            serde_json::from_str(json).map_err(|e| Failure::permanent("bad_output", e.to_string()))
        };
        match spec.action() {
            Some(Action::Invoke {
                connection,
                operation,
            }) => match self
                .runtime
                .invoke(connection, operation, &text, options)
                .await
            {
                Ok(out) => parse(&out.json),
                Err(e) => Err(classify(e)),
            },
            Some(Action::Transform(plugin)) => match self.runtime.apply(plugin, &text).await {
                Ok((outputs, _)) => outputs
                    .iter()
                    .map(|o| parse(o))
                    .collect::<std::result::Result<Vec<Value>, _>>()
                    .map(Value::Array),
                Err(e) => Err(classify(e)),
            },
            Some(Action::Map(code)) => jq::first(code, input)
                .map_err(|e| Failure::permanent("expression", format!("map: {e}"))),
            Some(Action::Lookup(lookup)) => self.lookup(lookup, input).await,
            Some(Action::Wait(_)) => Err(Failure::permanent(
                "configuration",
                "a wait step makes no call",
            )),
            None => Err(Failure::permanent(
                "configuration",
                "the step has no action",
            )),
        }
    }

    /// Writes a failed attempt: schedules a retry, or fails the step for
    /// good and starts the saga (or fails the run). Returns whether the run
    /// compensates now.
    pub(crate) async fn step_failed(
        &self,
        worker: &str,
        run_id: &str,
        run: &RunRow,
        def: &FlowDef,
        steps: &[StepRow],
        failed: FailedAttempt,
    ) -> Result<bool> {
        let errors = failed.errors();
        let errors_text = serde_json::to_string(&errors)?;
        let fence = self.fence(worker, run_id, false);
        let now = fence.now;
        let FailedAttempt {
            row,
            attempt,
            input,
            failure,
            ..
        } = &failed;
        let attempt = *attempt;
        if let Some(wait) = failed.retry_wait() {
            let next_at = now.saturating_add(i64::try_from(wait).unwrap_or(i64::MAX / 2));
            let retried = self
                .store()
                .retry_step(&fence, &row.id, attempt, &errors_text, next_at)
                .await?;
            if lease_held(retried, worker, run_id) {
                tracing::info!(run = %run_id, step = %row.id, attempt, wait_ms = wait, kind = failure.kind, "step failed; retrying");
            }
            return Ok(false);
        }
        let message = format!("step `{}` failed: {}", row.id, failure.message);
        let to_compensate = steps.iter().any(|s| {
            s.status == "completed"
                && def
                    .steps
                    .get(s.position)
                    .is_some_and(|d| d.compensation().is_some())
        });
        let mut ended = row.clone();
        ended.errors = errors;
        ended.attempts = attempt;
        if let Some(input) = input {
            ended.input = Some(input.clone());
        }
        let then = if to_compensate {
            AfterFailure::Compensate
        } else {
            AfterFailure::DeadLetter(dead_letter("failed", &ended, &[])?)
        };
        let held = self
            .store()
            .fail_step(&fence, &row.id, attempt, &errors_text, &message, &then)
            .await?;
        if !lease_held(held, worker, run_id) {
            return Ok(false);
        }
        if to_compensate {
            tracing::warn!(run = %run_id, step = %row.id, kind = failure.kind, "step failed for good; compensating");
            return Ok(true);
        }
        tracing::warn!(run = %run_id, step = %row.id, kind = failure.kind, "step failed for good; run failed");
        let m = self.runtime.metrics();
        m.record_run_finished(&run.flow, "failed", run.created_at);
        Ok(false)
    }
}

/// What one move of a step came to.
pub(crate) enum Moved {
    /// Go on as this says; what the move did is written.
    Next(Next),
    /// The attempt failed; nothing about the failure is written yet.
    Failed(Box<FailedAttempt>),
    /// The step's connection has its circuit open; the run is to park.
    Park(Box<Parked>),
}

impl Moved {
    fn failed(
        row: &StepRow,
        attempt: i64,
        input: Option<Value>,
        retry: Option<Retry>,
        failure: Failure,
    ) -> Moved {
        Moved::Failed(Box::new(FailedAttempt::new(
            row, attempt, input, retry, failure,
        )))
    }
}

/// A failed attempt of a step, before it is written.
pub(crate) struct FailedAttempt {
    /// The step as it was before the attempt.
    pub(crate) row: StepRow,
    pub(crate) attempt: i64,
    /// The input the attempt had, once computed.
    pub(crate) input: Option<Value>,
    /// The step's retry policy; `None` fails it for good.
    pub(crate) retry: Option<Retry>,
    pub(crate) failure: Failure,
}

impl FailedAttempt {
    /// Attempt `attempt` of step `row` (as it was before it) failed.
    pub(crate) fn new(
        row: &StepRow,
        attempt: i64,
        input: Option<Value>,
        retry: Option<Retry>,
        failure: Failure,
    ) -> FailedAttempt {
        FailedAttempt {
            row: row.clone(),
            attempt,
            input,
            retry,
            failure,
        }
    }

    /// The step's errors with this attempt's.
    pub(crate) fn errors(&self) -> Vec<StepError> {
        let mut errors = self.row.errors.clone();
        errors.push(error_entry("step", self.attempt, &self.failure));
        errors
    }

    /// How long to wait before the retry, or `None` when it fails for good.
    pub(crate) fn retry_wait(&self) -> Option<u64> {
        retry_wait(&self.row, self.attempt, self.retry.as_ref(), &self.failure)
    }
}

/// A step whose run is to park on an open circuit.
pub(crate) struct Parked {
    /// The step as it was before the move.
    pub(crate) row: StepRow,
    /// Calls made.
    pub(crate) attempts: i64,
    /// Its errors, the parking one included.
    pub(crate) errors: Vec<StepError>,
    pub(crate) connection: String,
}

/// How long step `row` waits before its next attempt after attempt
/// `attempt` failed, or `None` when it fails for good: attempts made just
/// before the run parked on an open circuit do not count against `retry`.
fn retry_wait(
    row: &StepRow,
    attempt: i64,
    retry: Option<&Retry>,
    failure: &Failure,
) -> Option<u64> {
    let parked = row.errors.iter().filter(|e| e.phase == "parked").count();
    let used = attempt - i64::try_from(parked).unwrap_or(0);
    let retry = retry.filter(|r| failure.retryable && used < i64::from(r.attempts))?;
    Some(backoff(retry, used, failure.retry_after_ms))
}

/// Whether a step with `status` has yet to end.
fn unfinished(status: &str) -> bool {
    matches!(status, "pending" | "running" | "waiting")
}

/// The dead letter of a run that ends as `status` because step `failed`
/// failed for good: that step's errors, then `compensation_errors`, and
/// the input that failed.
pub(crate) fn dead_letter<'a>(
    status: &'a str,
    failed: &'a StepRow,
    compensation_errors: &[StepError],
) -> Result<NewDeadLetter<'a>> {
    let mut errors: Vec<StepError> = failed
        .errors
        .iter()
        .filter(|e| e.phase == "step")
        .cloned()
        .collect();
    errors.extend(compensation_errors.iter().cloned());
    let input = failed.input_override.as_ref().or(failed.input.as_ref());
    Ok(NewDeadLetter {
        id: uuid::Uuid::new_v4().to_string(),
        status,
        step: &failed.id,
        attempts: failed.attempts,
        errors: serde_json::to_string(&errors)?,
        input: input.map(Value::to_string),
    })
}

/// The default input of a step: the output of the latest completed step
/// (in file order) it runs after, or the trigger event.
fn previous_output(run: &RunRow, steps: &[StepRow], graph: &Graph, position: usize) -> Value {
    steps
        .iter()
        .rfind(|s| graph.runs_after(position, s.position) && s.status == "completed")
        .and_then(|s| s.output.clone())
        .unwrap_or_else(|| run.trigger.clone())
}
