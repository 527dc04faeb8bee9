//! Master-data governance: which system is the system of record of each
//! field of each canonical entity (`schemas/canonical/v1`), and the checks
//! that hold flow steps to it, at deploy where the fields are known and at
//! run time before the call where they are computed.
//!
//! ```toml
//! description = "Who owns what"
//! [systems]                       # a system is one or more connections
//! crm = ["hubspot", "salesforce"]
//! erp = ["netsuite"]
//!
//! [entities.customer]             # per system, the fields it owns: a field,
//! crm = ["name", "domain"]        # a whole object (`budget`) or one field
//! erp = ["email"]                 # of it (`budget.currency`)
//! ```
//!
//! A step that writes an entity says which fields and whose values they are:
//!
//! ```toml
//! writes = { entity = "customer", fields = ["name", "domain"], from = "hubspot" }
//! ```
//!
//! A field is written only with its owner's value: copying the CRM's
//! customer name into the ERP is the point of a flow, writing the ERP's copy
//! back over the CRM's is what governance refuses. `from` defaults to the
//! connection of an event trigger; `fields_from` (jq over the run context
//! and `.input`) adds fields known only at run time (a list of names, or an
//! object whose keys are the names).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::definition::{self, FlowDef, StepDef, Trigger};
use super::exec::Failure;
use super::{FlowError, Flows, Result, now_text};
use junction_store::audit::{Outcome, Record};

/// The canonical entities and their JSON Schemas, embedded.
const SCHEMAS: &[(&str, &str)] = &[
    (
        "assignment",
        include_str!("../../../schemas/canonical/v1/assignment.schema.json"),
    ),
    (
        "contact",
        include_str!("../../../schemas/canonical/v1/contact.schema.json"),
    ),
    (
        "customer",
        include_str!("../../../schemas/canonical/v1/customer.schema.json"),
    ),
    (
        "engagement",
        include_str!("../../../schemas/canonical/v1/engagement.schema.json"),
    ),
    (
        "invoice",
        include_str!("../../../schemas/canonical/v1/invoice.schema.json"),
    ),
    (
        "milestone",
        include_str!("../../../schemas/canonical/v1/milestone.schema.json"),
    ),
    (
        "opportunity",
        include_str!("../../../schemas/canonical/v1/opportunity.schema.json"),
    ),
    (
        "project",
        include_str!("../../../schemas/canonical/v1/project.schema.json"),
    ),
    (
        "resource",
        include_str!("../../../schemas/canonical/v1/resource.schema.json"),
    ),
    (
        "role",
        include_str!("../../../schemas/canonical/v1/role.schema.json"),
    ),
    (
        "time-entry",
        include_str!("../../../schemas/canonical/v1/time-entry.schema.json"),
    ),
];

/// Each canonical entity's fields: its properties, and `a.b` for the
/// properties of an object (or of the items of a list) it holds.
static FIELDS: LazyLock<BTreeMap<&'static str, BTreeSet<String>>> = LazyLock::new(|| {
    SCHEMAS
        .iter()
        .map(|(entity, schema)| {
            let schema: Value = serde_json::from_str(schema).unwrap_or(Value::Null);
            (*entity, fields_of(&schema))
        })
        .collect()
});

fn fields_of(schema: &Value) -> BTreeSet<String> {
    let mut fields = BTreeSet::new();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return fields;
    };
    for (name, property) in properties {
        fields.insert(name.clone());
        if let Some(nested) = referenced(schema, property).and_then(|d| d.get("properties"))
            && let Some(nested) = nested.as_object()
        {
            fields.extend(nested.keys().map(|n| format!("{name}.{n}")));
        }
    }
    fields
}

/// The `$defs` entry a property refers to, directly, through
/// `anyOf`/`oneOf`/`allOf` or through its `items`.
fn referenced<'a>(schema: &'a Value, property: &'a Value) -> Option<&'a Value> {
    if let Some(name) = property
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        return schema.get("$defs")?.get(name);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(found) = property
            .get(key)
            .and_then(Value::as_array)
            .and_then(|all| all.iter().find_map(|p| referenced(schema, p)))
        {
            return Some(found);
        }
    }
    referenced(schema, property.get("items")?)
}

/// The canonical entities' names.
pub fn entities() -> impl Iterator<Item = &'static str> {
    FIELDS.keys().copied()
}

/// Whether `entity` is canonical, with a problem that lists them when not.
pub(crate) fn check_entity(entity: &str) -> Result<&'static BTreeSet<String>, String> {
    FIELDS.get(entity).ok_or_else(|| {
        format!(
            "`{entity}` is not a canonical entity; they are: {}",
            entities().collect::<Vec<_>>().join(", ")
        )
    })
}

fn check_field(entity: &str, field: &str) -> Result<(), String> {
    let fields = check_entity(entity)?;
    if fields.contains(field) {
        return Ok(());
    }
    let top: Vec<&str> = fields
        .iter()
        .filter(|f| !f.contains('.'))
        .map(String::as_str)
        .collect();
    Err(format!(
        "{entity} has no field `{field}`; its fields are: {}",
        top.join(", ")
    ))
}

/// The governance document as deployed (`PUT /v1/governance`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GovernanceDoc {
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Each system and the connections that are it, e.g. `crm = ["hubspot"]`.
    #[serde(default)]
    pub systems: BTreeMap<String, Vec<String>>,
    /// Per canonical entity, per system, the fields it owns.
    #[serde(default)]
    pub entities: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

/// What a step writes, for governance (`writes = {...}` on a step that
/// calls a connection).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Writes {
    /// The canonical entity.
    pub entity: String,
    /// The canonical fields it writes.
    #[serde(default)]
    pub fields: Vec<String>,
    /// jq over the run context and `.input`: more fields, known at run time.
    #[serde(default)]
    pub fields_from: Option<String>,
    /// The connection whose values are written; defaults to the connection
    /// of an event trigger.
    #[serde(default)]
    pub from: Option<String>,
}

impl Writes {
    /// The connection the values come from.
    pub(crate) fn source<'a>(&'a self, trigger: &'a Trigger) -> Option<&'a str> {
        self.from.as_deref().or(match trigger {
            Trigger::Event { connection, .. } => Some(connection.as_str()),
            _ => None,
        })
    }
}

/// Parses and checks a governance document: systems name connections (each
/// in one system), entities are canonical, their owners are systems, their
/// fields exist, and each field has one owner.
pub fn parse(source: &str) -> Result<GovernanceDoc, String> {
    let doc: GovernanceDoc =
        toml::from_str(source).map_err(|e| format!("the governance document is not valid: {e}"))?;
    let mut problems = Vec::new();
    let mut system_of: BTreeMap<&str, &str> = BTreeMap::new();
    for (system, connections) in &doc.systems {
        if connections.is_empty() {
            problems.push(format!(
                "systems.{system}: name at least one connection, e.g. {system} = [\"hubspot\"]"
            ));
        }
        for c in connections {
            if let Some(other) = system_of.insert(c, system) {
                problems.push(format!(
                    "systems.{system}: connection `{c}` is already system `{other}`; a connection is one system"
                ));
            }
        }
    }
    for (entity, owners) in &doc.entities {
        if let Err(e) = check_entity(entity) {
            problems.push(format!("entities.{entity}: {e}"));
            continue;
        }
        let mut owner_of: BTreeMap<&str, &str> = BTreeMap::new();
        for (system, fields) in owners {
            if !doc.systems.contains_key(system) {
                problems.push(format!(
                    "entities.{entity}.{system}: no system `{system}`; declare it under [systems] with its connections"
                ));
            }
            for field in fields {
                if let Err(e) = check_field(entity, field) {
                    problems.push(format!("entities.{entity}.{system}: {e}"));
                }
                let overlapping = owner_of.iter().find(|(other, _)| {
                    *other == field
                        || field.starts_with(&format!("{other}."))
                        || other.starts_with(&format!("{field}."))
                });
                if let Some((other, owner)) = overlapping {
                    problems.push(format!(
                        "entities.{entity}.{system}: `{field}` overlaps `{other}`, which system `{owner}` owns; a field has one owner"
                    ));
                }
                owner_of.insert(field, system);
            }
        }
    }
    if problems.is_empty() {
        Ok(doc)
    } else {
        Err(problems.join("; "))
    }
}

/// A deployed governance version, ready for checks.
#[derive(Debug, Clone)]
pub struct Owners {
    /// The version.
    pub version: i64,
    doc: GovernanceDoc,
    system_of: BTreeMap<String, String>,
}

impl Owners {
    /// Version `version` of the checked document `doc`.
    pub fn new(version: i64, doc: GovernanceDoc) -> Owners {
        let system_of = doc
            .systems
            .iter()
            .flat_map(|(s, cs)| cs.iter().map(move |c| (c.clone(), s.clone())))
            .collect();
        Owners {
            version,
            doc,
            system_of,
        }
    }

    /// The system that owns `field` of `entity` and the owned field or
    /// object it falls under.
    fn owner(&self, entity: &str, field: &str) -> Option<(&str, &str)> {
        let owners = self.doc.entities.get(entity)?;
        owners.iter().find_map(|(system, fields)| {
            fields
                .iter()
                .find(|f| *f == field || field.starts_with(&format!("{f}.")))
                .map(|f| (system.as_str(), f.as_str()))
        })
    }

    /// Why step `step` may not write `field` of `entity` with the values
    /// of connection `from`, if it may not.
    pub(crate) fn refusal(
        &self,
        step: &str,
        entity: &str,
        field: &str,
        from: &str,
    ) -> Option<String> {
        let (owner, owned) = self.owner(entity, field)?;
        let theirs = self.system_of.get(from);
        if theirs.is_some_and(|s| s == owner) {
            return None;
        }
        let connections = self
            .doc
            .systems
            .get(owner)
            .map(|c| c.join(", "))
            .unwrap_or_default();
        let from_system = theirs.map_or_else(
            || "a connection of no system".to_string(),
            |s| format!("system `{s}`"),
        );
        let whole = if owned == field {
            String::new()
        } else {
            format!(" (under `{owned}`)")
        };
        Some(format!(
            "step `{step}` writes {entity}.{field} with the value of `{from}` ({from_system}), but system `{owner}` ({connections}) owns {entity}.{field}{whole} in governance version {}: a field is written only with its owner's value; take it from `{owner}` or change its owner in the governance document",
            self.version
        ))
    }
}

/// The problems of step `step`'s `writes`, found without the governance
/// document: the step calls a connection, the entity and fields are
/// canonical, and the source is known.
pub(crate) fn writes_problems(at: &str, def: &FlowDef, step: &StepDef) -> Vec<String> {
    let Some(writes) = &step.writes else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    if step.connection.is_none() {
        problems.push(format!(
            "{at}: writes: only a step that calls a connection writes to a system"
        ));
    }
    match check_entity(&writes.entity) {
        Err(e) => problems.push(format!("{at}: writes.entity: {e}")),
        Ok(_) => problems.extend(
            writes
                .fields
                .iter()
                .filter_map(|f| check_field(&writes.entity, f).err())
                .map(|e| format!("{at}: writes.fields: {e}")),
        ),
    }
    if writes.fields.is_empty() && writes.fields_from.is_none() {
        problems.push(format!(
            "{at}: writes: name the `fields` it writes (or `fields_from`, jq that computes them)"
        ));
    }
    if writes.source(&def.trigger).is_none() {
        problems.push(format!(
            "{at}: writes.from: name the connection whose values the step writes (only an event trigger's connection is assumed)"
        ));
    }
    problems
}

/// The refusals of `def`'s declared fields under `owners`.
pub(crate) fn refusals(def: &FlowDef, owners: &Owners) -> Vec<String> {
    let mut found = Vec::new();
    for step in &def.steps {
        let Some(writes) = &step.writes else { continue };
        let Some(from) = writes.source(&def.trigger) else {
            continue;
        };
        found.extend(
            writes
                .fields
                .iter()
                .filter_map(|f| owners.refusal(&step.id, &writes.entity, f, from)),
        );
    }
    found
}

/// The fields a step writes at run time: its declared ones and those its
/// `fields_from` computes over `ctx` (a list of names, or an object whose
/// keys are the names).
pub(crate) fn run_fields(writes: &Writes, ctx: &Value) -> Result<Vec<String>, String> {
    let mut fields = writes.fields.clone();
    if let Some(code) = &writes.fields_from {
        match super::jq::first(code, ctx).map_err(|e| format!("writes.fields_from: {e}"))? {
            Value::Array(names) => {
                for name in names {
                    match name {
                        Value::String(s) => fields.push(s),
                        other => {
                            return Err(format!(
                                "writes.fields_from: gave {other}, not a field name"
                            ));
                        }
                    }
                }
            }
            Value::Object(object) => fields.extend(object.keys().cloned()),
            Value::Null => {}
            other => {
                return Err(format!(
                    "writes.fields_from: gave {other}; it must give a list of field names or an object"
                ));
            }
        }
    }
    for field in &fields {
        check_field(&writes.entity, field).map_err(|e| format!("writes.fields_from: {e}"))?;
    }
    Ok(fields)
}

/// A deployed governance version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GovernanceView {
    /// From 1.
    pub version: i64,
    /// sha256 of the source.
    pub digest: String,
    /// RFC 3339.
    pub deployed_at: String,
    /// Token name.
    pub deployed_by: String,
    /// The TOML.
    pub source: String,
    /// What it says.
    pub document: GovernanceDoc,
}

/// What a governance deploy did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GovernanceDeployed {
    /// The version now current.
    pub version: i64,
    /// sha256 of the source.
    pub digest: String,
    /// A new version was stored (false when the source is unchanged).
    pub changed: bool,
    /// Steps of deployed flows that this version refuses: each is
    /// dead-lettered at run time, before its call, until the flow or the
    /// document changes.
    pub conflicts: Vec<Conflict>,
}

/// A deployed flow's step that the governance refuses.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Conflict {
    /// The flow.
    pub flow: String,
    /// Its current version.
    pub flow_version: i64,
    /// What is refused, naming the step, the field and its owner.
    pub message: String,
}

impl Flows {
    /// Checks and stores `source` as the next governance version (nothing
    /// changes when it equals the current one), audited; says which steps
    /// of the deployed flows it refuses.
    pub async fn deploy_governance(&self, source: &str, by: &str) -> Result<GovernanceDeployed> {
        let digest = hex::encode(Sha256::digest(source.as_bytes()));
        let result = self.deploy_governance_inner(source, &digest, by).await;
        let detail = match &result {
            Ok(d) => format!("version {} ({} conflicts)", d.version, d.conflicts.len()),
            Err(e) => e.to_string(),
        };
        let record = Record {
            actor: by,
            action: "governance.deploy",
            target: "governance",
            digest: Some(&digest),
            outcome: Outcome::of(&result),
            detail: &detail,
        };
        self.store().audit_or_log(record).await;
        result
    }

    async fn deploy_governance_inner(
        &self,
        source: &str,
        digest: &str,
        by: &str,
    ) -> Result<GovernanceDeployed> {
        let doc = parse(source).map_err(FlowError::Invalid)?;
        let (version, changed) = self
            .store()
            .deploy_governance(source, digest, by, &now_text())
            .await?;
        let owners = Owners::new(version, doc);
        let mut conflicts = Vec::new();
        for flow in self.store().current_flows().await? {
            let Ok(def) = definition::parse(&flow.source) else {
                continue;
            };
            conflicts.extend(refusals(&def, &owners).into_iter().map(|message| Conflict {
                flow: flow.name.clone(),
                flow_version: flow.version,
                message,
            }));
        }
        Ok(GovernanceDeployed {
            version,
            digest: digest.to_string(),
            changed,
            conflicts,
        })
    }

    /// The current governance version.
    pub async fn governance(&self) -> Result<GovernanceView> {
        let row = self.store().governance().await?.ok_or_else(|| {
            FlowError::NotFound(
                "no governance document is deployed: `PUT /v1/governance` with one (`junction governance deploy FILE`)".into(),
            )
        })?;
        let document = parse(&row.source).map_err(FlowError::Invalid)?;
        Ok(GovernanceView {
            version: row.version,
            digest: row.digest,
            deployed_at: row.deployed_at,
            deployed_by: row.deployed_by,
            source: row.source,
            document,
        })
    }

    /// The current governance version, parsed once per version.
    pub(crate) async fn owners(&self) -> Result<Option<Arc<Owners>>> {
        let Some(version) = self.store().governance_version().await? else {
            return Ok(None);
        };
        if let Some(cached) = self.owners_cache()
            && cached.version == version
        {
            return Ok(Some(cached));
        }
        let Some(row) = self.store().governance().await? else {
            return Ok(None);
        };
        let doc = parse(&row.source).map_err(FlowError::Invalid)?;
        let owners = Arc::new(Owners::new(row.version, doc));
        if let Ok(mut slot) = self.owners.lock() {
            *slot = Some(owners.clone());
        }
        Ok(Some(owners))
    }

    fn owners_cache(&self) -> Option<Arc<Owners>> {
        self.owners.lock().ok().and_then(|slot| slot.clone())
    }

    /// The refusals of `def`'s declared writes under the current governance.
    pub(crate) async fn check_ownership(&self, def: &FlowDef) -> Result<()> {
        let Some(owners) = self.owners().await? else {
            return Ok(());
        };
        let refused = refusals(def, &owners);
        if refused.is_empty() {
            Ok(())
        } else {
            Err(FlowError::Invalid(refused.join("; ")))
        }
    }

    /// Checks what step `step` is about to write (`ctx` with its `.input`)
    /// against the current governance: a refusal is a failure that is not
    /// retried.
    pub(crate) async fn check_writes(
        &self,
        def: &FlowDef,
        step: &StepDef,
        ctx: &Value,
    ) -> std::result::Result<(), Failure> {
        let Some(writes) = &step.writes else {
            return Ok(());
        };
        let fields = run_fields(writes, ctx).map_err(|e| Failure::permanent("expression", e))?;
        let owners = self.owners().await.map_err(|e| Failure {
            kind: "internal",
            message: format!("reading the governance document: {e}"),
            retryable: true,
            retry_after_ms: None,
        })?;
        let (Some(owners), Some(from)) = (owners, writes.source(&def.trigger)) else {
            return Ok(());
        };
        let refused: Vec<String> = fields
            .iter()
            .filter_map(|f| owners.refusal(&step.id, &writes.entity, f, from))
            .collect();
        if refused.is_empty() {
            Ok(())
        } else {
            Err(Failure::permanent("governance", refused.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"
        [systems]
        crm = ["hubspot", "salesforce"]
        erp = ["netsuite"]
        [entities.customer]
        crm = ["name", "domain"]
        erp = ["email"]
        [entities.project]
        crm = ["budget"]
    "#;

    #[test]
    fn the_canonical_fields_include_nested_objects() {
        let project = check_entity("project").unwrap();
        assert!(project.contains("budget.currency"), "{project:?}");
        assert!(check_entity("invoice").unwrap().contains("lines.quantity"));
        assert!(
            check_entity("custmer")
                .unwrap_err()
                .contains("customer, engagement")
        );
    }

    #[test]
    fn a_field_is_written_only_with_its_owners_value() {
        let owners = Owners::new(3, parse(DOC).unwrap());
        assert_eq!(owners.refusal("s", "customer", "name", "salesforce"), None);
        assert_eq!(owners.refusal("s", "customer", "country", "netsuite"), None);
        let refused = owners.refusal("s", "customer", "name", "netsuite").unwrap();
        assert!(
            refused.starts_with("step `s` writes customer.name with the value of `netsuite` (system `erp`), but system `crm` (hubspot, salesforce) owns customer.name in governance version 3"),
            "{refused}"
        );
        let nested = owners
            .refusal("s", "project", "budget.amount", "jira")
            .unwrap();
        assert!(nested.contains("(a connection of no system)"), "{nested}");
        assert!(nested.contains("(under `budget`)"), "{nested}");
    }

    #[test]
    fn bad_documents_name_every_problem() {
        let err = parse(
            r#"
            [systems]
            crm = ["hubspot"]
            erp = ["hubspot"]
            [entities.customer]
            crm = ["name", "nam"]
            erp = ["name"]
            pmo = ["domain"]
            [entities.deal]
            crm = ["x"]
            "#,
        )
        .unwrap_err();
        for part in [
            "systems.erp: connection `hubspot` is already system `crm`",
            "entities.customer.crm: customer has no field `nam`",
            "entities.customer.erp: `name` overlaps `name`, which system `crm` owns",
            "entities.customer.pmo: no system `pmo`",
            "entities.deal: `deal` is not a canonical entity",
        ] {
            assert!(err.contains(part), "{part}\n{err}");
        }
        assert!(
            parse("[entity.customer]")
                .unwrap_err()
                .contains("unknown field")
        );
    }
}
