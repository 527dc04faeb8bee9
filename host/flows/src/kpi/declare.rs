//! The `[kpi]` table of a flow file: what the flow measures, checked at deploy.
//!
//! ```toml
//! # From the trigger event's business time (its `time`; the run's creation
//! # when the trigger has none) to the completion of step `assignments`.
//! [kpi.project_setup]
//! measure = "duration"
//! from = "trigger"          # or "run" (its creation), or a step id (its completion)
//! until = "assignments"
//! # from_time = "<jq>"      # optional: the start time from the run context
//!
//! # Runs of this flow that failed for good on a data error.
//! [kpi.invoice_blocked]
//! measure = "blocked"
//! errors = ["invalid_input"] # the default
//! ```

use serde::Deserialize;

use crate::definition::{FlowDef, referenced_steps};
use crate::graph::Graph;
use crate::jq;

/// One KPI a flow declares, as written; [`KpiDef::measure`] reads it once validated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpiDef {
    /// `duration` or `blocked`.
    pub measure: String,
    /// Where a duration starts: `trigger` (the default), `run` or a step id.
    #[serde(default)]
    pub from: Option<String>,
    /// A jq expression over the run context (`{trigger, steps, run}`) that
    /// yields the start time (RFC 3339 text or ms since the epoch); when it
    /// yields nothing usable, `from` applies.
    #[serde(default)]
    pub from_time: Option<String>,
    /// The step whose completion ends a duration.
    #[serde(default)]
    pub until: Option<String>,
    /// The error kinds that make a failed run blocked; default `["invalid_input"]`.
    #[serde(default)]
    pub errors: Option<Vec<String>>,
}

/// Where a duration starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start<'a> {
    /// The trigger event's business time (its `time`), else the run's creation.
    Trigger,
    /// The run's creation.
    Run,
    /// The completion of this step.
    Step(&'a str),
}

/// What a validated KPI measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Measure<'a> {
    /// The time from `from` (or `from_time`) to the completion of `until`.
    Duration {
        /// The start.
        from: Start<'a>,
        /// The jq expression of the start time, if any.
        from_time: Option<&'a str>,
        /// The step that ends it.
        until: &'a str,
    },
    /// Runs that failed for good on one of `errors`.
    Blocked {
        /// Error kinds.
        errors: Vec<&'a str>,
    },
}

/// The error kinds a `blocked` KPI may name: those that are never retried,
/// so that one of them means the step (and the run) failed for good.
pub const FINAL_ERROR_KINDS: [&str; 8] = [
    "invalid_input",
    "unauthorized",
    "not_found",
    "conflict",
    "configuration",
    "limit_exceeded",
    "bad_output",
    "expression",
];

const DEFAULT_BLOCKING: [&str; 1] = ["invalid_input"];

impl KpiDef {
    /// What the KPI measures; `None` when it does not validate.
    pub fn measure(&self) -> Option<Measure<'_>> {
        match self.measure.as_str() {
            "duration" => Some(Measure::Duration {
                from: match self.from.as_deref() {
                    None | Some("trigger") => Start::Trigger,
                    Some("run") => Start::Run,
                    Some(step) => Start::Step(step),
                },
                from_time: self.from_time.as_deref(),
                until: self.until.as_deref()?,
            }),
            "blocked" => Some(Measure::Blocked {
                errors: match &self.errors {
                    Some(kinds) => kinds.iter().map(String::as_str).collect(),
                    None => DEFAULT_BLOCKING.to_vec(),
                },
            }),
            _ => None,
        }
    }
}

/// KPI names: snake_case, a letter first, at most 64 characters.
pub fn valid_kpi_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Every problem of the `[kpi]` table of `def`, each naming where it is and the fix.
pub(crate) fn check(def: &FlowDef) -> Vec<String> {
    let mut problems = Vec::new();
    let position = |id: &str| def.steps.iter().position(|s| s.id == id);
    let order = Graph::of(def);
    let step_ids = || {
        def.steps
            .iter()
            .map(|s| format!("`{}`", s.id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (name, kpi) in &def.kpi {
        let at = format!("kpi.{name}");
        if !valid_kpi_name(name) {
            problems.push(format!(
                "{at}: a KPI name is snake_case: a lowercase letter followed by up to 63 lowercase letters, digits or `_`"
            ));
        }
        match kpi.measure.as_str() {
            "duration" => {
                if kpi.errors.is_some() {
                    problems.push(format!(
                        "{at}.errors: only a `blocked` KPI names errors; remove it"
                    ));
                }
                let until = match kpi.until.as_deref() {
                    None => {
                        problems.push(format!(
                            "{at}.until: a `duration` KPI needs `until`, the step whose completion ends it (one of {})",
                            step_ids()
                        ));
                        None
                    }
                    Some(until) => match position(until) {
                        None => {
                            problems.push(format!(
                                "{at}.until: no step `{until}` in this flow; use one of {}",
                                step_ids()
                            ));
                            None
                        }
                        Some(i) => Some(i),
                    },
                };
                match kpi.from.as_deref() {
                    None | Some("trigger" | "run") => {}
                    Some(step) => match (position(step), until) {
                        (None, _) => problems.push(format!(
                            "{at}.from: `{step}` is neither `trigger`, `run` nor a step of this flow; use one of those or {}",
                            step_ids()
                        )),
                        (Some(i), Some(u)) if !order.runs_after(u, i) => problems.push(format!(
                            "{at}.from: step `{step}` does not run before `until` step `{}`",
                            def.steps[u].id
                        )),
                        _ => {}
                    },
                }
                if let Some(code) = &kpi.from_time {
                    if let Err(e) = jq::check(code) {
                        problems.push(format!("{at}.from_time: {e}"));
                    }
                    for id in referenced_steps(code) {
                        match (position(&id), until) {
                            (None, _) => problems.push(format!(
                                "{at}.from_time: refers to step `{id}`, which this flow does not have"
                            )),
                            (Some(i), Some(u)) if i != u && !order.runs_after(u, i) => problems.push(format!(
                                "{at}.from_time: refers to step `{id}`, which does not run before `until` step `{}`",
                                def.steps[u].id
                            )),
                            _ => {}
                        }
                    }
                }
            }
            "blocked" => {
                for (field, set) in [
                    ("from", kpi.from.is_some()),
                    ("from_time", kpi.from_time.is_some()),
                    ("until", kpi.until.is_some()),
                ] {
                    if set {
                        problems.push(format!(
                            "{at}.{field}: a `blocked` KPI counts failed runs and has no `{field}`; remove it, or use `measure = \"duration\"`"
                        ));
                    }
                }
                match &kpi.errors {
                    Some(kinds) if kinds.is_empty() => problems.push(format!(
                        "{at}.errors: name at least one error kind, or leave it out for `[\"invalid_input\"]`"
                    )),
                    Some(kinds) => {
                        for kind in kinds {
                            if !FINAL_ERROR_KINDS.contains(&kind.as_str()) {
                                problems.push(format!(
                                    "{at}.errors: `{kind}` is not an error kind that fails a run for good; use any of {}",
                                    FINAL_ERROR_KINDS.join(", ")
                                ));
                            }
                        }
                    }
                    None => {}
                }
            }
            other => problems.push(format!(
                "{at}.measure: `{other}` is not a measure; use `duration` (with `from` and `until`) or `blocked`"
            )),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::parse;

    const STEPS: &str = r#"
        trigger = { type = "manual" }
        [[steps]]
        id = "a"
        map = "1"
        [[steps]]
        id = "b"
        map = "2"
    "#;

    fn problems(kpis: &str) -> Vec<String> {
        check(&parse(&format!("{STEPS}\n{kpis}")).unwrap())
    }

    #[test]
    fn declared_kpis_are_read() {
        let def = parse(&format!(
            "{STEPS}\n[kpi.setup]\nmeasure = \"duration\"\nuntil = \"b\"\n\
             [kpi.from_a]\nmeasure = \"duration\"\nfrom = \"a\"\nuntil = \"b\"\n\
             [kpi.stuck]\nmeasure = \"blocked\"\n"
        ))
        .unwrap();
        assert!(check(&def).is_empty(), "{:?}", check(&def));
        assert_eq!(
            def.kpi["setup"].measure(),
            Some(Measure::Duration {
                from: Start::Trigger,
                from_time: None,
                until: "b"
            })
        );
        assert_eq!(
            def.kpi["from_a"].measure(),
            Some(Measure::Duration {
                from: Start::Step("a"),
                from_time: None,
                until: "b"
            })
        );
        assert_eq!(
            def.kpi["stuck"].measure(),
            Some(Measure::Blocked {
                errors: vec!["invalid_input"]
            })
        );
    }

    #[test]
    fn mistakes_are_named_with_their_fix() {
        assert_eq!(
            problems("[kpi.setup]\nmeasure = \"duration\"\nuntil = \"c\""),
            ["kpi.setup.until: no step `c` in this flow; use one of `a`, `b`"]
        );
        assert_eq!(
            problems("[kpi.setup]\nmeasure = \"speed\""),
            [
                "kpi.setup.measure: `speed` is not a measure; use `duration` (with `from` and `until`) or `blocked`"
            ]
        );
        assert_eq!(
            problems("[kpi.setup]\nmeasure = \"duration\"\nfrom = \"b\"\nuntil = \"a\""),
            ["kpi.setup.from: step `b` does not run before `until` step `a`"]
        );
        let p = problems("[kpi.Setup-Time]\nmeasure = \"blocked\"\nuntil = \"a\"");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("snake_case"), "{p:?}");
        assert!(p[1].starts_with("kpi.Setup-Time.until:"), "{p:?}");
        let p = problems("[kpi.stuck]\nmeasure = \"blocked\"\nerrors = [\"timeout\"]");
        assert!(p[0].contains("`timeout` is not an error kind"), "{p:?}");
        let p = problems(
            "[kpi.setup]\nmeasure = \"duration\"\nuntil = \"a\"\nfrom_time = \".steps.b.at\"",
        );
        assert!(
            p[0].contains("does not run before `until` step `a`"),
            "{p:?}"
        );
        let err = parse(&format!(
            "{STEPS}\n[kpi.setup]\nmeasure = \"duration\"\nuntill = \"a\""
        ))
        .unwrap_err();
        assert!(err.contains("untill"), "{err}");
    }

    #[test]
    fn names_are_snake_case_and_bounded() {
        assert!(valid_kpi_name("project_setup"));
        assert!(valid_kpi_name("p90_2"));
        assert!(!valid_kpi_name("ProjectSetup"));
        assert!(!valid_kpi_name("_setup"));
        assert!(!valid_kpi_name("project-setup"));
        assert!(!valid_kpi_name(&"a".repeat(65)));
    }
}
