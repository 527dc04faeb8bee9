//! Branches: the steps of a run that need nothing of each other move at
//! once, on the one lease of the worker that holds the run.
//!
//! Each branch makes its own attempt with its own key, and writes its own
//! start, skip and completion as it goes, so a crash loses none of them.
//! What a failed branch leads to is decided once every branch of the
//! stretch has ended: a failure for good compensates every completed
//! step, the other branches included; otherwise a retry waits for the
//! branch that can go again first, and an open circuit parks the run.

use super::definition::FlowDef;
use super::exec::{Next, RunRow, StepRow};
use super::graph::Graph;
use super::step::{FailedAttempt, Moved, Parked};
use super::{Flows, Result};
use junction_store::RunWrite;

/// The most steps of one run that move at once; more that are ready move
/// in the next stretch.
pub(crate) const MAX_BRANCHES: usize = 16;

impl Flows {
    /// Moves the steps `ready` (indices into `steps`) at once.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn branches(
        &self,
        worker: &str,
        run_id: &str,
        run: &RunRow,
        def: &FlowDef,
        graph: &Graph,
        steps: &[StepRow],
        ready: &[usize],
    ) -> Result<Next> {
        // Each branch sees the run as it was: none reads another's output
        // (validation allows references only to steps a step runs after).
        let moves = ready.iter().map(|&index| {
            let mut mine = steps.to_vec();
            async move {
                self.move_step(worker, run_id, run, def, graph, &mut mine, index)
                    .await
            }
        });
        let mut failed: Vec<FailedAttempt> = Vec::new();
        let mut parked: Vec<Box<Parked>> = Vec::new();
        let mut lost = false;
        let mut error = None;
        for moved in futures_util::future::join_all(moves).await {
            match moved {
                Ok(Moved::Next(Next::Stop)) => lost = true,
                Ok(Moved::Next(_)) => {}
                Ok(Moved::Failed(f)) => failed.push(*f),
                Ok(Moved::Park(p)) => parked.push(p),
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        if lost {
            return Ok(Next::Stop);
        }
        if failed.is_empty() && parked.is_empty() {
            return Ok(Next::Reload);
        }
        // One failed branch decides what the run does next; the others are
        // left pending with their errors, to go again when the run does.
        let waits: Vec<Option<u64>> = failed.iter().map(FailedAttempt::retry_wait).collect();
        let decides = match waits.iter().position(Option::is_none) {
            Some(for_good) => Some(for_good),
            None if parked.is_empty() => waits
                .iter()
                .enumerate()
                .min_by_key(|(_, w)| **w)
                .map(|(i, _)| i),
            None => None,
        };
        let deciding = decides.map(|i| failed.swap_remove(i));
        // The parked step that parks the run is written by `park`.
        let skip = usize::from(deciding.is_none()).min(parked.len());
        let mut pend = Vec::with_capacity(failed.len() + parked.len());
        for f in &failed {
            pend.push((
                f.row.id.as_str(),
                f.attempt,
                serde_json::to_string(&f.errors())?,
            ));
        }
        for p in &parked[skip..] {
            pend.push((
                p.row.id.as_str(),
                p.attempts,
                serde_json::to_string(&p.errors)?,
            ));
        }
        let pend = pend
            .into_iter()
            .map(|(step, attempts, errors)| RunWrite::PendStep {
                step,
                attempts,
                errors,
            });
        if !self.commit_fenced(worker, run_id, false, pend).await? {
            return Ok(Next::Stop);
        }
        match deciding {
            Some(failure) => {
                let (_, steps) = self.load(run_id).await?;
                let compensating = self
                    .step_failed(worker, run_id, run, def, &steps, failure)
                    .await?;
                Ok(Next::reload_if(compensating))
            }
            None => {
                if let Some(first) = parked.first() {
                    self.park(worker, run_id, first).await?;
                }
                Ok(Next::Stop)
            }
        }
    }
}
