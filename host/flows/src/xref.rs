//! The cross-system id map: which record in each system is the same
//! customer, project or invoice. A step records the ids its output gives
//! (written with the step's completion, in its transaction), a `lookup`
//! step reads them into the run context, operators read and correct them
//! through `/v1/xref`.
//!
//! ```toml
//! [[steps]]
//! id = "erp_job"
//! connection = "netsuite"
//! operation = "create-job"
//! # the key is the entity's canonical key, the same in every system;
//! # jq over the run context with the step's `.input` and `.output`
//! record = { entity = "project", key = ".steps.engagement.project.key", id = ".output.id" }
//!
//! [[steps]]
//! id = "ids"
//! lookup = { entity = "project", key = ".trigger.project_key" }
//! # or { entity = "project", system = "hubspot", id = ".trigger.deal_id" }
//! # output: {entity, key, found, ids: {hubspot: "9876543202", netsuite: "2001", ...}}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::exec::Failure;
use super::governance::check_entity;
use super::{FlowError, Flows, Result, jq, now_ms, rfc3339};
use junction_store::{NewXref, XrefRow};

/// An id a step's output gives an entity in a system.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RecordDef {
    /// The canonical entity, e.g. `project`.
    pub entity: String,
    /// jq: the entity's canonical key.
    pub key: String,
    /// jq: the record's id in the system.
    pub id: String,
    /// The system (connection); defaults to the step's connection.
    #[serde(default)]
    pub system: Option<String>,
}

/// `record = {...}` or `record = [{...}, ...]`.
pub(crate) fn one_or_many<'de, D>(d: D) -> std::result::Result<Vec<RecordDef>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(RecordDef),
        Many(Vec<RecordDef>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(r) => vec![r],
        OneOrMany::Many(rs) => rs,
    })
}

/// A step that reads the id map: by canonical `key`, or by one system's `id`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// The canonical entity.
    pub entity: String,
    /// jq over the run context: the canonical key.
    #[serde(default)]
    pub key: Option<String>,
    /// With `id`: the system whose id is known.
    #[serde(default)]
    pub system: Option<String>,
    /// jq over the run context: that system's id.
    #[serde(default)]
    pub id: Option<String>,
}

/// One system's id of an entity.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct XrefId {
    /// The record's id in that system.
    pub id: String,
    /// The run that recorded it, when a run did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// That run's flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    /// `run`, or the token that linked it by hand.
    pub by: String,
    /// RFC 3339.
    pub at: String,
}

/// An entity's ids in every system that has it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct XrefView {
    /// The canonical entity.
    pub entity: String,
    /// Its canonical key.
    pub key: String,
    /// By system (connection).
    pub ids: BTreeMap<String, XrefId>,
}

impl XrefView {
    fn of(entity: &str, key: &str, rows: Vec<XrefRow>) -> XrefView {
        let ids = rows
            .into_iter()
            .map(|r| {
                let id = XrefId {
                    id: r.id,
                    run: r.run,
                    flow: r.flow,
                    by: r.by,
                    at: rfc3339(r.at),
                };
                (r.system, id)
            })
            .collect();
        XrefView {
            entity: entity.to_string(),
            key: key.to_string(),
            ids,
        }
    }
}

/// The problems of an API caller's entity, key, system and id.
fn check_names(entity: &str, key: &str, system: &str) -> Result<()> {
    check_entity(entity).map_err(FlowError::Invalid)?;
    if key.is_empty() || key.len() > 256 {
        return Err(FlowError::Invalid(
            "the key must be 1 to 256 characters".into(),
        ));
    }
    if system.is_empty() || system.len() > 64 {
        return Err(FlowError::Invalid(
            "the system must be 1 to 64 characters (a connection name)".into(),
        ));
    }
    Ok(())
}

/// A jq result as an id or key: a non-empty string, or a number.
fn id_text(what: &str, value: Value) -> std::result::Result<String, String> {
    match value {
        Value::String(s) if !s.is_empty() && s.len() <= 256 => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!(
            "{what}: gave {other}; it must give a string of 1 to 256 characters or a number"
        )),
    }
}

/// `ctx` with a step's `.input` and, once it has one, `.output`.
pub(crate) fn with_io(ctx: &Value, input: &Value, output: Option<&Value>) -> Value {
    let mut ctx = ctx.clone();
    if let Some(object) = ctx.as_object_mut() {
        object.insert("input".into(), input.clone());
        if let Some(output) = output {
            object.insert("output".into(), output.clone());
        }
    }
    ctx
}

/// What step `step` (calling `connection`, if any) records, from `ctx`
/// with its `.input` and `.output`.
pub(crate) fn records(
    step: &str,
    connection: Option<&str>,
    defs: &[RecordDef],
    ctx: &Value,
) -> std::result::Result<Vec<NewXref>, Failure> {
    let fail = |e: String| Failure::permanent("record", format!("step `{step}`: {e}"));
    defs.iter()
        .map(|r| {
            let system = r.system.as_deref().or(connection).unwrap_or_default();
            let key = jq::first(&r.key, ctx).map_err(|e| format!("record.key: {e}"));
            let key = key.and_then(|k| id_text("record.key", k)).map_err(fail)?;
            let id = jq::first(&r.id, ctx).map_err(|e| format!("record.id: {e}"));
            let id = id.and_then(|i| id_text("record.id", i)).map_err(fail)?;
            Ok(NewXref {
                entity: r.entity.clone(),
                key,
                system: system.to_string(),
                id,
            })
        })
        .collect()
}

/// The problems of a step's `record` and `lookup`, without the host.
pub(crate) fn problems(
    at: &str,
    connection: Option<&str>,
    records: &[RecordDef],
    lookup: Option<&Lookup>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for r in records {
        if let Err(e) = check_entity(&r.entity) {
            problems.push(format!("{at}: record.entity: {e}"));
        }
        if r.system.is_none() && connection.is_none() {
            problems.push(format!(
                "{at}: record.system: name the system; the step calls no connection"
            ));
        }
    }
    if let Some(l) = lookup {
        if let Err(e) = check_entity(&l.entity) {
            problems.push(format!("{at}: lookup.entity: {e}"));
        }
        match (&l.key, &l.system, &l.id) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => {}
            _ => problems.push(format!("{at}: lookup: give `key`, or `system` with `id`")),
        }
    }
    problems
}

impl Flows {
    /// Every system's id of `entity` `key`.
    pub async fn xref(&self, entity: &str, key: &str) -> Result<XrefView> {
        check_entity(entity).map_err(FlowError::Invalid)?;
        let rows = self.store().xref(entity, key).await?;
        if rows.is_empty() {
            return Err(FlowError::NotFound(format!(
                "no system has {entity} `{key}` in the id map"
            )));
        }
        Ok(XrefView::of(entity, key, rows))
    }

    /// The entity whose record in `system` is `id`.
    pub async fn xref_by_id(&self, entity: &str, system: &str, id: &str) -> Result<XrefView> {
        check_entity(entity).map_err(FlowError::Invalid)?;
        let keys = self.store().xref_keys(entity, system, id).await?;
        match keys.as_slice() {
            [] => Err(FlowError::NotFound(format!(
                "no {entity} has id `{id}` in `{system}` in the id map"
            ))),
            [key] => self.xref(entity, key).await,
            many => Err(FlowError::Conflict(format!(
                "{} {entity} keys have id `{id}` in `{system}`: {}; unlink the wrong ones with `DELETE /v1/xref/{entity}/{{key}}/{system}`",
                many.len(),
                many.join(", ")
            ))),
        }
    }

    /// Links `entity` `key` to `id` in `system` by hand (or unlinks it,
    /// with `None`), audited. Returns the entity's ids after the change.
    pub async fn link_xref(
        &self,
        entity: &str,
        key: &str,
        system: &str,
        id: Option<&str>,
        by: &str,
    ) -> Result<XrefView> {
        check_names(entity, key, system)?;
        if let Some(id) = id {
            id_text("id", Value::String(id.to_string())).map_err(FlowError::Invalid)?;
        }
        self.store()
            .put_xref(entity, key, system, id, by, now_ms())
            .await?;
        let rows = self.store().xref(entity, key).await?;
        Ok(XrefView::of(entity, key, rows))
    }

    /// The output of a `lookup` step over `ctx`: `{entity, key, found, ids}`.
    pub(crate) async fn lookup(
        &self,
        lookup: &Lookup,
        ctx: &Value,
    ) -> std::result::Result<Value, Failure> {
        let eval = |field: &str, code: &str| {
            jq::first(code, ctx)
                .map_err(|e| format!("lookup.{field}: {e}"))
                .and_then(|v| id_text(&format!("lookup.{field}"), v))
                .map_err(|e| Failure::permanent("expression", e))
        };
        let store_failure = |e: junction_store::Error| Failure {
            kind: "internal",
            message: format!("reading the id map: {e}"),
            retryable: true,
            retry_after_ms: None,
        };
        let entity = lookup.entity.as_str();
        let key = match (&lookup.key, &lookup.system, &lookup.id) {
            (Some(code), _, _) => Some(eval("key", code)?),
            (None, Some(system), Some(code)) => {
                let id = eval("id", code)?;
                let keys = self
                    .store()
                    .xref_keys(entity, system, &id)
                    .await
                    .map_err(store_failure)?;
                if keys.len() > 1 {
                    return Err(Failure::permanent(
                        "conflict",
                        format!(
                            "{} {entity} keys have id `{id}` in `{system}`: {}; unlink the wrong ones in the id map",
                            keys.len(),
                            keys.join(", ")
                        ),
                    ));
                }
                keys.into_iter().next()
            }
            _ => None,
        };
        let rows = match &key {
            Some(key) => self
                .store()
                .xref(entity, key)
                .await
                .map_err(store_failure)?,
            None => Vec::new(),
        };
        let ids: serde_json::Map<String, Value> = rows
            .into_iter()
            .map(|r| (r.system, Value::String(r.id)))
            .collect();
        Ok(json!({"entity": entity, "key": key, "found": !ids.is_empty(), "ids": ids}))
    }
}
