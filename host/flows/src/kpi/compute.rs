//! Computing the KPI report of a window from the store.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use junction_store::{CompletedStepRow, KpiRunRow, StepRow, Store, TouchKind};

use super::{
    ConnectionFailures, DeadLetterAge, DeclaredKpi, DurationStats, FailedSync, FlowBlocked,
    FlowDuration, FlowFailures, FlowTouches, KpiReport, ManualTouch, Measure, NotMeasured, Start,
    StartSources, ratio,
};
use crate::definition::{self, Action, FlowDef};
use crate::{FlowError, Flows, Result, StepError, jq, now_ms, rfc3339};

/// Flow definitions by flow and version, each parsed once per report.
#[derive(Default)]
struct Defs(HashMap<(String, i64), Option<Arc<FlowDef>>>);

impl Defs {
    async fn get(
        &mut self,
        store: &Store,
        flow: &str,
        version: i64,
    ) -> Result<Option<Arc<FlowDef>>> {
        let key = (flow.to_string(), version);
        if let Some(def) = self.0.get(&key) {
            return Ok(def.clone());
        }
        let def = store
            .flow_source(flow, version)
            .await?
            .and_then(|source| definition::parse(&source).ok())
            .map(Arc::new);
        self.0.insert(key, def.clone());
        Ok(def)
    }
}

/// The declared KPIs as they accumulate: per name, its measure and per flow
/// its figures.
#[derive(Default)]
struct Declared {
    durations: BTreeMap<String, BTreeMap<String, (Vec<f64>, StartSources)>>,
    blocked: BTreeMap<String, BTreeMap<String, (BTreeSet<String>, u64)>>,
}

impl Declared {
    /// Makes sure every KPI of `def` (flow `flow`) is listed, with zeros.
    fn declare(&mut self, flow: &str, def: &FlowDef) {
        for (name, kpi) in &def.kpi {
            match kpi.measure() {
                Some(Measure::Duration { .. }) if !self.blocked.contains_key(name) => {
                    self.durations
                        .entry(name.clone())
                        .or_default()
                        .entry(flow.to_string())
                        .or_default();
                }
                Some(Measure::Blocked { .. }) if !self.durations.contains_key(name) => {
                    self.blocked
                        .entry(name.clone())
                        .or_default()
                        .entry(flow.to_string())
                        .or_default();
                }
                _ => {}
            }
        }
    }

    fn into_report(self) -> BTreeMap<String, DeclaredKpi> {
        let mut out = BTreeMap::new();
        for (name, flows) in self.durations {
            let all: Vec<f64> = flows
                .values()
                .flat_map(|(d, _)| d.iter().copied())
                .collect();
            let flows = flows
                .into_iter()
                .map(|(flow, (seconds, started_from))| FlowDuration {
                    flow,
                    stats: DurationStats::of(&seconds),
                    started_from,
                })
                .collect();
            out.insert(
                name,
                DeclaredKpi::Duration {
                    all: DurationStats::of(&all),
                    flows,
                },
            );
        }
        for (name, flows) in self.blocked {
            let flows: Vec<FlowBlocked> = flows
                .into_iter()
                .map(|(flow, (runs, open))| FlowBlocked {
                    flow,
                    runs: runs.len() as u64,
                    open,
                })
                .collect();
            out.insert(
                name,
                DeclaredKpi::Blocked {
                    runs: flows.iter().map(|f| f.runs).sum(),
                    open: flows.iter().map(|f| f.open).sum(),
                    flows,
                },
            );
        }
        out
    }
}

impl Flows {
    /// The business KPIs of the window `[since, until)` (ms since the
    /// epoch): the declared durations and blocked runs, failed runs per
    /// flow and failed calls per connection, the share of runs a person
    /// touched, open dead letters, and what is not measured yet.
    pub async fn kpis(&self, since: i64, until: i64) -> Result<KpiReport> {
        if since >= until {
            return Err(FlowError::Invalid(format!(
                "the window is empty: `since` ({}) must be before `until` ({})",
                rfc3339(since),
                rfc3339(until)
            )));
        }
        let store = self.store();
        let mut defs = Defs::default();
        let mut declared = Declared::default();
        let mut current = Vec::new();
        for row in store.current_flows().await? {
            if let Ok(def) = definition::parse(&row.source) {
                let def = Arc::new(def);
                declared.declare(&row.name, &def);
                defs.0
                    .insert((row.name.clone(), row.version), Some(def.clone()));
                current.push((row.name, def));
            }
        }
        self.durations(store, &mut defs, &mut declared, since, until)
            .await?;

        let runs = store.kpi_runs(since, until).await?;
        let by_id: HashMap<&str, &KpiRunRow> = runs.iter().map(|r| (r.id.as_str(), r)).collect();
        let mut flows: BTreeMap<&str, FlowFailures> = BTreeMap::new();
        for run in &runs {
            if let Some(def) = defs.get(store, &run.flow, run.flow_version).await? {
                declared.declare(&run.flow, &def);
            }
            let entry = flows.entry(&run.flow).or_insert_with(|| FlowFailures {
                flow: run.flow.clone(),
                runs: 0,
                failed: 0,
                ratio: None,
            });
            match run.status.as_str() {
                "completed" => entry.runs += 1,
                "failed" | "compensated" => {
                    entry.runs += 1;
                    entry.failed += 1;
                }
                _ => {}
            }
        }
        let mut connections: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for step in store.kpi_steps(since, until).await? {
            let Some(run) = by_id.get(step.run_id.as_str()) else {
                continue;
            };
            let Some(def) = defs.get(store, &run.flow, run.flow_version).await? else {
                continue;
            };
            let Some(spec) = def.steps.iter().find(|s| s.id == step.step_id) else {
                continue;
            };
            let errors: Vec<StepError> = serde_json::from_str(&step.errors)?;
            let failed_kinds: Vec<&str> = errors
                .iter()
                .filter(|e| e.phase == "step")
                .map(|e| e.kind.as_str())
                .collect();
            if let Some(Action::Invoke { connection, .. }) = spec.action() {
                let (calls, failed) = connections.entry(connection.to_string()).or_default();
                let completed = u64::from(step.status == "completed");
                *calls += failed_kinds.len() as u64 + completed;
                *failed += failed_kinds.len() as u64;
            }
            for (name, kpi) in &def.kpi {
                if let Some(Measure::Blocked { errors }) = kpi.measure()
                    && failed_kinds.iter().any(|k| errors.contains(k))
                    && let Some((blocked, _)) = declared
                        .blocked
                        .get_mut(name)
                        .and_then(|f| f.get_mut(&run.flow))
                {
                    blocked.insert(run.id.clone());
                }
            }
        }
        self.open_blocked(store, &current, &mut declared).await?;

        let manual_touch = manual_touch(&runs, &store.kpi_touches(since, until).await?);
        let now = now_ms();
        let dead_letters = store
            .dead_letter_summary()
            .await?
            .into_iter()
            .map(|d| DeadLetterAge {
                flow: d.flow,
                open: u64::try_from(d.open).unwrap_or(0),
                oldest_age_seconds: now.saturating_sub(d.oldest_at).max(0) as f64 / 1000.0,
            })
            .collect();
        Ok(KpiReport {
            since: rfc3339(since),
            until: rfc3339(until),
            kpis: declared.into_report(),
            failed_sync: FailedSync {
                flows: flows
                    .into_values()
                    .map(|mut f| {
                        f.ratio = ratio(f.failed, f.runs);
                        f
                    })
                    .collect(),
                connections: connections
                    .into_iter()
                    .map(|(connection, (calls, failed))| ConnectionFailures {
                        connection,
                        calls,
                        failed,
                        ratio: ratio(failed, calls),
                    })
                    .collect(),
            },
            manual_touch,
            dead_letters,
            time_to_reconcile: NotMeasured::time_to_reconcile(),
        })
    }

    /// The duration KPIs whose `until` step completed in the window.
    async fn durations(
        &self,
        store: &Store,
        defs: &mut Defs,
        declared: &mut Declared,
        since: i64,
        until: i64,
    ) -> Result<()> {
        for row in store.steps_completed_in(since, until).await? {
            let Some(def) = defs.get(store, &row.flow, row.flow_version).await? else {
                continue;
            };
            declared.declare(&row.flow, &def);
            let mut steps: Option<Vec<StepRow>> = None;
            for (name, kpi) in &def.kpi {
                let Some(Measure::Duration {
                    from,
                    from_time,
                    until: end,
                }) = kpi.measure()
                else {
                    continue;
                };
                if end != row.step_id {
                    continue;
                }
                let Some((start, source)) =
                    start_of(store, &row, from, from_time, &mut steps).await?
                else {
                    continue;
                };
                let Some((seconds, sources)) = declared
                    .durations
                    .get_mut(name)
                    .and_then(|f| f.get_mut(&row.flow))
                else {
                    continue;
                };
                seconds.push(row.finished_at.saturating_sub(start).max(0) as f64 / 1000.0);
                match source {
                    Source::TriggerTime => sources.trigger_time += 1,
                    Source::RunCreated => sources.run_created += 1,
                    Source::Step => sources.step_completed += 1,
                    Source::FromTime => sources.from_time += 1,
                }
            }
        }
        Ok(())
    }

    /// The dead letters open now that a `blocked` KPI of their flow's
    /// current version counts: their failed step's last error is one of its kinds.
    async fn open_blocked(
        &self,
        store: &Store,
        current: &[(String, Arc<FlowDef>)],
        declared: &mut Declared,
    ) -> Result<()> {
        for (flow, def) in current {
            let kinds: Vec<(&String, Vec<&str>)> = def
                .kpi
                .iter()
                .filter_map(|(name, kpi)| match kpi.measure() {
                    Some(Measure::Blocked { errors }) => Some((name, errors)),
                    _ => None,
                })
                .collect();
            if kinds.is_empty() {
                continue;
            }
            for letter in store.dead_letters(Some(flow)).await? {
                let errors: Vec<StepError> = serde_json::from_str(&letter.errors)?;
                let Some(last) = errors.iter().rev().find(|e| e.phase == "step") else {
                    continue;
                };
                for (name, errors) in &kinds {
                    if errors.contains(&last.kind.as_str())
                        && let Some((_, open)) = declared
                            .blocked
                            .get_mut(*name)
                            .and_then(|f| f.get_mut(flow))
                    {
                        *open += 1;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Where a duration's start time came from.
enum Source {
    TriggerTime,
    RunCreated,
    Step,
    FromTime,
}

/// The start of a duration that ends at `row`, and where it came from;
/// `None` when its `from` step has not completed. `steps` caches the run's
/// steps, read only when needed.
async fn start_of(
    store: &Store,
    row: &CompletedStepRow,
    from: Start<'_>,
    from_time: Option<&str>,
    steps: &mut Option<Vec<StepRow>>,
) -> Result<Option<(i64, Source)>> {
    if (matches!(from, Start::Step(_)) || from_time.is_some()) && steps.is_none() {
        *steps = Some(store.run_steps(&row.run_id).await?);
    }
    let steps = steps.as_deref().unwrap_or_default();
    if let Some(code) = from_time {
        let context = context(row, steps);
        if let Some(at) = jq::first(code, &context).ok().as_ref().and_then(time_ms) {
            return Ok(Some((at, Source::FromTime)));
        }
    }
    Ok(match from {
        Start::Trigger => {
            let trigger: Value = serde_json::from_str(&row.trigger).unwrap_or(Value::Null);
            match trigger.get("time").and_then(time_ms) {
                Some(at) => Some((at, Source::TriggerTime)),
                None => Some((row.run_created_at, Source::RunCreated)),
            }
        }
        Start::Run => Some((row.run_created_at, Source::RunCreated)),
        Start::Step(id) => steps
            .iter()
            .find(|s| s.id == id && s.status == "completed")
            .and_then(|s| s.finished_at)
            .map(|at| (at, Source::Step)),
    })
}

/// The run context a `from_time` expression sees, as steps' jq does.
fn context(row: &CompletedStepRow, steps: &[StepRow]) -> Value {
    let trigger: Value = serde_json::from_str(&row.trigger).unwrap_or(Value::Null);
    let steps = steps.iter().map(|s| {
        let output = s
            .output
            .as_deref()
            .and_then(|o| serde_json::from_str(o).ok());
        (s.id.as_str(), s.status.as_str(), output)
    });
    crate::step::jq_context(&row.run_id, &row.flow, trigger, steps)
}

/// A time as RFC 3339 text or ms since the epoch.
fn time_ms(value: &Value) -> Option<i64> {
    match value {
        Value::String(text) => super::parse_time(text),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// The manual-touch share of `runs`, from their `touches`.
fn manual_touch(runs: &[KpiRunRow], touches: &[junction_store::TouchRow]) -> ManualTouch {
    let touched: BTreeSet<&str> = touches.iter().map(|t| t.run_id.as_str()).collect();
    let mut by_kind: BTreeMap<String, u64> = TouchKind::ALL
        .iter()
        .map(|k| (k.as_str().to_string(), 0))
        .collect();
    for t in touches {
        *by_kind.entry(t.kind.clone()).or_default() += 1;
    }
    let mut flows: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for run in runs {
        let (all, hit) = flows.entry(&run.flow).or_default();
        *all += 1;
        *hit += u64::from(touched.contains(run.id.as_str()));
    }
    let all = runs.len() as u64;
    let hit = runs
        .iter()
        .filter(|r| touched.contains(r.id.as_str()))
        .count() as u64;
    ManualTouch {
        runs: all,
        touched: hit,
        ratio: ratio(hit, all),
        by_kind,
        flows: flows
            .into_iter()
            .map(|(flow, (runs, touched))| FlowTouches {
                flow: flow.to_string(),
                runs,
                touched,
                ratio: ratio(touched, runs),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_are_rfc3339_or_milliseconds() {
        assert_eq!(
            time_ms(&json!("2026-01-05T09:00:00Z")),
            Some(1_767_603_600_000)
        );
        assert_eq!(
            time_ms(&json!("2026-01-05T10:00:00+01:00")),
            Some(1_767_603_600_000)
        );
        assert_eq!(
            time_ms(&json!(1_767_603_600_000i64)),
            Some(1_767_603_600_000)
        );
        assert_eq!(time_ms(&json!("yesterday")), None);
        assert_eq!(time_ms(&Value::Null), None);
    }

    #[test]
    fn touches_count_runs_once_and_kinds_each_time() {
        let run = |id: &str, flow: &str| KpiRunRow {
            id: id.into(),
            flow: flow.into(),
            flow_version: 1,
            status: "completed".into(),
        };
        let touch = |run: &str, kind: &str| junction_store::TouchRow {
            run_id: run.into(),
            kind: kind.into(),
            actor: "ops".into(),
            at: 0,
        };
        let m = manual_touch(
            &[run("a", "f"), run("b", "f"), run("c", "g"), run("d", "g")],
            &[touch("a", "replay"), touch("a", "input_corrected")],
        );
        assert_eq!((m.runs, m.touched, m.ratio), (4, 1, Some(0.25)));
        assert_eq!(m.by_kind["replay"], 1);
        assert_eq!(m.by_kind["input_corrected"], 1);
        assert_eq!(m.by_kind["discard"], 0);
        assert_eq!(m.flows[0].ratio, Some(0.5));
        assert_eq!(m.flows[1].ratio, Some(0.0));
    }
}
