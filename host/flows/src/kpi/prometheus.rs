//! The KPI report as Prometheus gauges and, for durations, summaries
//! (quantiles, sum and count; text format 0.0.4), appended to the host's
//! scrape. Labels are bounded: KPI, flow and connection names
//! the operator deployed, fixed quantiles; never run ids.

use std::fmt::Write;

use super::{DeclaredKpi, KpiReport};

/// One family: its samples as name suffix (`_sum`, `_count` of a
/// summary), label pairs and value.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<Sample>,
}

type Sample = (&'static str, Vec<(&'static str, String)>, f64);

impl Family {
    fn gauge(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind: "gauge",
            samples: Vec::new(),
        }
    }

    fn summary(name: &'static str, help: &'static str) -> Family {
        Family {
            kind: "summary",
            ..Family::gauge(name, help)
        }
    }

    fn push(&mut self, labels: Vec<(&'static str, String)>, value: f64) {
        self.samples.push(("", labels, value));
    }

    fn push_suffixed(
        &mut self,
        suffix: &'static str,
        labels: Vec<(&'static str, String)>,
        value: f64,
    ) {
        self.samples.push((suffix, labels, value));
    }

    fn encode(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (suffix, labels, value) in &self.samples {
            out.push_str(self.name);
            out.push_str(suffix);
            if !labels.is_empty() {
                out.push('{');
                for (i, (key, value)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{key}=\"{}\"", escape(value));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {value}");
        }
    }
}

/// A label value as the text format quotes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl KpiReport {
    /// Appends the report's gauges to `out` in the Prometheus text format:
    /// every family is complete (`# HELP`, `# TYPE`, samples), ratios
    /// without a denominator are left out rather than reported as 0.
    pub fn encode_prometheus(&self, out: &mut String) {
        let mut window = Family::gauge(
            "junction_kpi_window_seconds",
            "Length of the window the junction_kpi_ gauges are computed over",
        );
        let seconds = chrono::DateTime::parse_from_rfc3339(&self.until)
            .ok()
            .zip(chrono::DateTime::parse_from_rfc3339(&self.since).ok())
            .map_or(0.0, |(u, s)| (u - s).num_milliseconds() as f64 / 1000.0);
        window.push(vec![], seconds);
        let mut duration = Family::summary(
            "junction_kpi_duration_seconds",
            "Declared duration KPIs ending in the window (nearest-rank quantiles), by KPI and flow",
        );
        let mut blocked = Family::gauge(
            "junction_kpi_blocked_runs",
            "Runs created in the window that a declared blocked KPI counts, by KPI and flow",
        );
        let mut blocked_open = Family::gauge(
            "junction_kpi_blocked_open",
            "Open dead letters that a declared blocked KPI counts, by KPI and flow",
        );
        for (kpi, declared) in &self.kpis {
            match declared {
                DeclaredKpi::Duration { flows, .. } => {
                    for f in flows {
                        let labels = || vec![("kpi", kpi.clone()), ("flow", f.flow.clone())];
                        for (q, v) in [("0.5", f.stats.p50_seconds), ("0.9", f.stats.p90_seconds)] {
                            if let Some(v) = v {
                                let mut l = labels();
                                l.push(("quantile", q.to_string()));
                                duration.push(l, v);
                            }
                        }
                        duration.push_suffixed("_sum", labels(), f.stats.sum_seconds);
                        duration.push_suffixed("_count", labels(), f.stats.count as f64);
                    }
                }
                DeclaredKpi::Blocked { flows, .. } => {
                    for f in flows {
                        let labels = || vec![("kpi", kpi.clone()), ("flow", f.flow.clone())];
                        blocked.push(labels(), f.runs as f64);
                        blocked_open.push(labels(), f.open as f64);
                    }
                }
            }
        }
        let mut failed_runs = Family::gauge(
            "junction_kpi_failed_sync_ratio",
            "Of the runs created in the window that ended, the share that failed or was compensated, by flow",
        );
        for f in &self.failed_sync.flows {
            if let Some(r) = f.ratio {
                failed_runs.push(vec![("flow", f.flow.clone())], r);
            }
        }
        let mut failed_calls = Family::gauge(
            "junction_kpi_failed_call_ratio",
            "Of the calls the steps of the window's runs made, the share that failed, by connection",
        );
        for c in &self.failed_sync.connections {
            if let Some(r) = c.ratio {
                failed_calls.push(vec![("connection", c.connection.clone())], r);
            }
        }
        let mut touched = Family::gauge(
            "junction_kpi_manual_touch_ratio",
            "Of the runs created in the window, the share a person replayed, corrected or discarded, by flow",
        );
        for f in &self.manual_touch.flows {
            if let Some(r) = f.ratio {
                touched.push(vec![("flow", f.flow.clone())], r);
            }
        }
        for family in [
            window,
            duration,
            blocked,
            blocked_open,
            failed_runs,
            failed_calls,
            touched,
        ] {
            family.encode(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::kpi::{DurationStats, FlowDuration, ManualTouch, NotMeasured, StartSources};

    #[test]
    fn gauges_are_labelled_by_kpi_flow_and_quantile() {
        let report = KpiReport {
            since: "2026-01-05T00:00:00.000Z".into(),
            until: "2026-01-06T00:00:00.000Z".into(),
            kpis: BTreeMap::from([(
                "project_setup".to_string(),
                DeclaredKpi::Duration {
                    all: DurationStats::of(&[300.0]),
                    flows: vec![FlowDuration {
                        flow: "closed-won".into(),
                        stats: DurationStats::of(&[300.0]),
                        started_from: StartSources::default(),
                    }],
                },
            )]),
            failed_sync: Default::default(),
            manual_touch: ManualTouch::default(),
            dead_letters: vec![],
            time_to_reconcile: NotMeasured::time_to_reconcile(),
        };
        let mut out = String::new();
        report.encode_prometheus(&mut out);
        assert!(out.contains("junction_kpi_window_seconds 86400\n"), "{out}");
        assert!(
            out.contains(
                "junction_kpi_duration_seconds{kpi=\"project_setup\",flow=\"closed-won\",quantile=\"0.5\"} 300\n"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "junction_kpi_duration_seconds_count{kpi=\"project_setup\",flow=\"closed-won\"} 1\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("# TYPE junction_kpi_duration_seconds summary\n"),
            "{out}"
        );
        assert!(
            out.contains("# TYPE junction_kpi_manual_touch_ratio gauge\n"),
            "{out}"
        );
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
