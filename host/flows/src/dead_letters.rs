//! Dead letters: listing, replaying and discarding them.

use serde::Serialize;
use serde_json::Value;

use junction_store::ReplayOutcome;
use junction_store::audit::{Outcome, Record};

use super::{DeadLetter, FlowError, Flows, Result, rfc3339};

impl Flows {
    /// Dead letters, newest first.
    pub async fn dead_letters(&self, flow: Option<&str>) -> Result<Vec<DeadLetter>> {
        let rows = self.store().dead_letters(flow).await?;
        rows.into_iter()
            .map(|r| {
                Ok(DeadLetter {
                    id: r.id,
                    run_id: r.run_id,
                    flow: r.flow,
                    step: r.step,
                    attempts: r.attempts,
                    errors: serde_json::from_str(&r.errors)?,
                    input: r.input.map(|t| serde_json::from_str(&t)).transpose()?,
                    created_at: rfc3339(r.created_at),
                })
            })
            .collect()
    }

    /// What a corrected input of dead letter `id` must satisfy: the input
    /// schema of the operation its failed step calls, in the plugin version
    /// the step's connection is bound to now (the one a replay calls).
    pub async fn dead_letter_input_schema(&self, id: &str) -> Result<InputSchemaView> {
        let not_found = || FlowError::NotFound(format!("no dead letter with id `{id}`"));
        let letter = self.store().dead_letter(id).await?.ok_or_else(not_found)?;
        let run = self
            .store()
            .run_state(&letter.run_id)
            .await?
            .ok_or_else(not_found)?;
        let definition = self.definition(&letter.flow, run.flow_version).await?;
        let step = definition.steps.iter().find(|s| s.id == letter.step);
        let mut view = InputSchemaView {
            connection: step.and_then(|s| s.connection.clone()),
            operation: step.and_then(|s| s.operation.clone()),
            plugin: None,
            version: None,
            schema: None,
        };
        let (Some(connection), Some(operation)) = (&view.connection, &view.operation) else {
            return Ok(view);
        };
        let (_, plugin) = self
            .runtime()
            .connector_for(connection)
            .await
            .map_err(|e| FlowError::Conflict(format!("connection `{connection}`: {e}")))?;
        view.schema = plugin
            .operation(operation)
            .map(|op| serde_json::from_str(&op.input_schema))
            .transpose()?;
        view.plugin = Some(plugin.info().name.clone());
        view.version = Some(plugin.version().to_string());
        Ok(view)
    }

    /// Replays a dead-lettered run from its failed step: steps that completed
    /// and were not undone (no compensation, or one that failed) keep their
    /// outputs; the others run again
    /// with the same idempotency keys. `input` replaces the failed step's
    /// input. The dead letter is removed; audited as `run.replay` and kept
    /// as a manual touch of the run (`replay`, or `input_corrected`).
    pub async fn replay(&self, id: &str, input: Option<Value>, by: &str) -> Result<String> {
        let input = input.map(|input| input.to_string());
        let (run_id, step_id) = match self
            .store()
            .replay_dead_letter(id, input.as_deref(), by)
            .await?
        {
            ReplayOutcome::Replayed { run_id, step_id } => (run_id, step_id),
            ReplayOutcome::NotFound => {
                return Err(FlowError::NotFound(format!(
                    "no dead letter with id `{id}`"
                )));
            }
            ReplayOutcome::NotReplayable { run_id } => {
                return Err(FlowError::Conflict(format!(
                    "run `{run_id}` is not failed or compensated; only those can be replayed"
                )));
            }
        };
        self.audit_run(
            "run.replay",
            by,
            &run_id,
            &format!("dead letter {id}, from step {step_id}"),
        )
        .await;
        self.wake.notify_one();
        Ok(run_id)
    }

    /// Replays every dead letter of flow `flow`, oldest first; returns the run ids.
    pub async fn replay_flow(&self, flow: &str, by: &str) -> Result<Vec<String>> {
        let mut letters = self.dead_letters(Some(flow)).await?;
        letters.reverse();
        let mut runs = Vec::new();
        for letter in letters {
            match self.replay(&letter.id, None, by).await {
                Ok(run) => runs.push(run),
                // Replayed or discarded meanwhile by someone else.
                Err(FlowError::NotFound(_) | FlowError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(runs)
    }

    /// Discards a dead letter; its run stays as it ended. Audited as
    /// `run.discard` and kept as a manual touch of the run.
    pub async fn discard(&self, id: &str, by: &str) -> Result<()> {
        let run_id = self
            .store()
            .discard_dead_letter(id, by)
            .await?
            .ok_or_else(|| FlowError::NotFound(format!("no dead letter with id `{id}`")))?;
        self.audit_run("run.discard", by, &run_id, &format!("dead letter {id}"))
            .await;
        Ok(())
    }

    async fn audit_run(&self, action: &str, by: &str, run_id: &str, detail: &str) {
        let record = Record {
            actor: by,
            action,
            target: run_id,
            digest: None,
            outcome: Outcome::Ok,
            detail,
        };
        self.store().audit_or_log(record).await;
    }
}

/// The input schema a dead letter's corrected input is checked against.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InputSchemaView {
    /// The connection the failed step calls; absent for a transform, map
    /// or wait step.
    pub connection: Option<String>,
    /// The operation it calls.
    pub operation: Option<String>,
    /// The plugin the connection is bound to now.
    pub plugin: Option<String>,
    /// Its version.
    pub version: Option<String>,
    /// The operation's input JSON Schema; absent when the step calls no
    /// operation (then only JSON syntax is checked).
    pub schema: Option<Value>,
}
