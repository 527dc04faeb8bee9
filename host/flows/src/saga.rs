//! The saga: after a step failed for good, compensate the completed steps
//! in reverse order of completion, then end the run and dead-letter it.

use serde_json::{Value, json};
use tracing::Instrument;

use super::definition::FlowDef;
use super::exec::{Failure, RunRow, StepRow, backoff, classify, error_entry, lease_held};
use super::step::dead_letter;
use super::{FlowError, Flows, Result, StepError, jq};
use junction_runtime::runtime::CallOptions;

impl Flows {
    /// One backward move of the saga: compensate the latest completed step
    /// that has a compensation. Returns whether to keep going.
    pub(crate) async fn backward(
        &self,
        worker: &str,
        run_id: &str,
        run: &RunRow,
        def: &FlowDef,
        steps: &[StepRow],
    ) -> Result<bool> {
        // The step being compensated goes on first; then the one that
        // completed last (branches that ran at once end in any order).
        let next = steps
            .iter()
            .filter(|s| {
                (s.status == "completed" || s.status == "compensating")
                    && def
                        .steps
                        .get(s.position)
                        .is_some_and(|d| d.compensation().is_some())
            })
            .max_by_key(|s| (s.status == "compensating", s.finished_at, s.position));
        let Some(row) = next else {
            let failed_id = run.failed_step.clone().unwrap_or_default();
            let Some(failed) = steps.iter().find(|s| s.id == failed_id) else {
                return Err(FlowError::Invalid(format!(
                    "run `{run_id}` is compensating but names no failed step"
                )));
            };
            let compensation_errors: Vec<StepError> = steps
                .iter()
                .filter(|s| s.status == "compensation_failed")
                .flat_map(|s| s.errors.iter().filter(|e| e.phase == "compensate").cloned())
                .collect();
            let status = if steps.iter().any(|s| s.status == "compensation_failed") {
                "failed"
            } else {
                "compensated"
            };
            let letter = dead_letter(status, failed, &compensation_errors)?;
            let fence = self.fence(worker, run_id, false);
            let held = self.store().finish_saga(&fence, &letter).await?;
            if lease_held(held, worker, run_id) {
                tracing::warn!(run = %run_id, status, "saga finished");
                let m = self.runtime.metrics();
                m.record_run_finished(&run.flow, status, run.created_at);
            }
            return Ok(false);
        };
        let Some(spec) = def.steps.get(row.position) else {
            return Ok(false);
        };
        let Some((connection, compensate)) = spec.compensation() else {
            return Ok(false);
        };
        let attempt = row.compensation_attempts + 1;
        let step_input = row.input.clone().unwrap_or(Value::Null);
        let step_output = row.output.clone().unwrap_or(Value::Null);
        let input = match &compensate.input {
            Some(code) => jq::first(
                code,
                &json!({"input": step_input, "output": step_output, "trigger": run.trigger}),
            )
            .map_err(|e| Failure::permanent("expression", format!("compensate.input: {e}"))),
            None => Ok(json!({"input": step_input, "output": step_output})),
        };
        let fence = self.fence(worker, run_id, true);
        let held = self
            .store()
            .start_compensation(&fence, &row.id, attempt)
            .await?;
        if !lease_held(held, worker, run_id) {
            return Ok(false);
        }
        let result = match input {
            Ok(input) => {
                let options = CallOptions {
                    idempotency_key: Some(format!("{}:compensate", row.key)),
                    run_id: Some(run_id.to_string()),
                    attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                    trace: run.trace.clone(),
                };
                let span = tracing::info_span!(
                    "compensate",
                    otel.name = %format!("compensate {}", row.id),
                    step = %row.id,
                    attempt,
                );
                self.runtime
                    .invoke(
                        connection,
                        &compensate.operation,
                        &input.to_string(),
                        options,
                    )
                    .instrument(span)
                    .await
                    .map(drop)
                    .map_err(classify)
            }
            Err(failure) => Err(failure),
        };
        match result {
            Ok(()) => {
                let fence = self.fence(worker, run_id, false);
                let held = self.store().step_compensated(&fence, &row.id).await?;
                Ok(lease_held(held, worker, run_id))
            }
            Err(failure) => {
                let mut errors = row.errors.clone();
                errors.push(error_entry("compensate", attempt, &failure));
                let retry = failure.retryable && attempt < i64::from(spec.retry.attempts);
                let status = if retry {
                    "compensating"
                } else {
                    "compensation_failed"
                };
                let errors_text = serde_json::to_string(&errors)?;
                let fence = self.fence(worker, run_id, false);
                let retry_at = retry.then(|| {
                    let wait = backoff(&spec.retry, attempt, failure.retry_after_ms);
                    fence
                        .now
                        .saturating_add(i64::try_from(wait).unwrap_or(i64::MAX / 2))
                });
                let held = self
                    .store()
                    .compensation_failed(&fence, &row.id, status, &errors_text, retry_at)
                    .await?;
                Ok(lease_held(held, worker, run_id) && !retry)
            }
        }
    }
}
