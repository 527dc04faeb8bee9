//! Deploying flows, and reading what is deployed.

use sha2::{Digest, Sha256};

use junction_store::audit::{Outcome, Record};
use junction_store::{DeployOutcome, FlowRow, NewFlowVersion, ScheduleUpdate};

use super::{
    Deployed, FlowDetail, FlowError, FlowSummary, FlowVersion, FlowVersionSource, Flows, Result,
    Trigger, definition, next_fire, now_ms, now_text,
};

impl Flows {
    /// Validates and stores `source` as the next version of flow `name`
    /// (nothing changes when it equals the current version), audited.
    pub async fn deploy(&self, name: &str, source: &str, by: &str) -> Result<Deployed> {
        let result = self.deploy_inner(name, source, by).await;
        let digest = hex::encode(Sha256::digest(source.as_bytes()));
        let detail = match &result {
            Ok(d) => format!("version {}", d.version),
            Err(e) => e.to_string(),
        };
        let record = Record {
            actor: by,
            action: "flow.deploy",
            target: name,
            digest: Some(&digest),
            outcome: Outcome::of(&result),
            detail: &detail,
        };
        self.store().audit_or_log(record).await;
        result
    }

    async fn deploy_inner(&self, name: &str, source: &str, by: &str) -> Result<Deployed> {
        if !valid_flow_name(name) {
            return Err(FlowError::Invalid(format!(
                "flow name `{name}` must be 1-64 characters of a-z, 0-9, `-` and `_`"
            )));
        }
        let def = definition::validate(&self.runtime, name, source)
            .await
            .map_err(FlowError::Invalid)?;
        self.check_kpi_measures(name, &def).await?;
        self.check_ownership(&def).await?;
        if matches!(def.trigger, Trigger::Stream { .. }) && !self.streams.enabled() {
            return Err(FlowError::Invalid(
                "trigger: a `stream` trigger needs NATS: set `[events] nats_url` in the host's configuration".into(),
            ));
        }
        let digest = hex::encode(Sha256::digest(source.as_bytes()));
        let now = now_text();
        let cron = match &def.trigger {
            Trigger::Schedule { cron } => Some(cron.as_str()),
            _ => None,
        };
        let schedule = match cron {
            Some(cron) => {
                next_fire(cron, now_ms()).map_or(ScheduleUpdate::Never, ScheduleUpdate::Next)
            }
            None => ScheduleUpdate::Remove,
        };
        let new = NewFlowVersion {
            name,
            source,
            digest: &digest,
            by,
            at: &now,
            schedule,
        };
        let (version, created, changed) = match self.store().deploy_flow(&new).await? {
            DeployOutcome::Stored {
                version,
                created,
                changed,
            } => (version, created, changed),
            DeployOutcome::NeverFires => {
                return Err(FlowError::Invalid(format!(
                    "trigger.cron: `{}` never fires again",
                    cron.unwrap_or_default()
                )));
            }
        };
        if changed {
            self.streams.deployed();
        }
        Ok(Deployed {
            name: name.to_string(),
            version,
            digest,
            created,
            changed,
        })
    }

    /// A KPI name means one measure across flows: `project_setup` declared
    /// as a duration by one flow cannot be a blocked count in another.
    async fn check_kpi_measures(&self, name: &str, def: &definition::FlowDef) -> Result<()> {
        if def.kpi.is_empty() {
            return Ok(());
        }
        let mut problems = Vec::new();
        for other in self.store().current_flows().await? {
            if other.name == name {
                continue;
            }
            let Ok(other_def) = definition::parse(&other.source) else {
                continue;
            };
            for (kpi, declared) in &def.kpi {
                if let Some(theirs) = other_def.kpi.get(kpi)
                    && theirs.measure != declared.measure
                {
                    problems.push(format!(
                        "kpi.{kpi}.measure: flow `{}` declares `{kpi}` as `{}`; a KPI has one measure across flows, so use `{}` or another name",
                        other.name, theirs.measure, theirs.measure
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(FlowError::Invalid(problems.join("; ")))
        }
    }

    /// Every deployed flow.
    pub async fn list(&self) -> Result<Vec<FlowSummary>> {
        let rows = self.store().flows().await?;
        Ok(rows.iter().map(summary_from_row).collect())
    }

    /// One flow with its source and versions.
    pub async fn get(&self, name: &str) -> Result<FlowDetail> {
        let row = self
            .store()
            .flow(name)
            .await?
            .ok_or_else(|| FlowError::NotFound(format!("no flow named `{name}`")))?;
        let versions = self
            .store()
            .flow_versions(name)
            .await?
            .into_iter()
            .map(|r| FlowVersion {
                version: r.version,
                digest: r.digest,
                deployed_at: r.deployed_at,
                deployed_by: r.deployed_by,
            })
            .collect();
        Ok(FlowDetail {
            summary: summary_from_row(&row),
            source: row.source,
            versions,
        })
    }

    /// Version `version` of flow `name`, with its source.
    pub async fn version(&self, name: &str, version: i64) -> Result<FlowVersionSource> {
        let missing = || FlowError::NotFound(format!("flow `{name}` has no version {version}"));
        let row = self
            .store()
            .flow_versions(name)
            .await?
            .into_iter()
            .find(|r| r.version == version)
            .ok_or_else(missing)?;
        let source = self
            .store()
            .flow_source(name, version)
            .await?
            .ok_or_else(missing)?;
        Ok(FlowVersionSource {
            version: FlowVersion {
                version: row.version,
                digest: row.digest,
                deployed_at: row.deployed_at,
                deployed_by: row.deployed_by,
            },
            source,
        })
    }
}

fn valid_flow_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn summary_from_row(row: &FlowRow) -> FlowSummary {
    let def = definition::parse(&row.source).ok();
    FlowSummary {
        name: row.name.clone(),
        version: row.version,
        trigger: def
            .as_ref()
            .map_or("unknown", |d| d.trigger.kind())
            .to_string(),
        description: def.and_then(|d| d.description),
        created_at: row.created_at.clone(),
        updated_at: row.updated_at.clone(),
    }
}
