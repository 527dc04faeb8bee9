//! The stored records (projects, roles, people, assignments, time entries), their JSON shapes and
//! the generic one-record and per-project page answers.

use std::collections::HashMap;
use std::time::SystemTime;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::server::rfc3339_millis;

use super::errors::not_found;
use super::*;

#[derive(Clone, Serialize)]
pub(super) struct Project {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) external_id: Option<String>,
    pub(super) customer: Option<String>,
    pub(super) status: String,
    pub(super) start_date: Option<String>,
    pub(super) budget: Option<Value>,
    pub(super) created_at: String,
    pub(super) updated_at: String,
}

#[derive(Clone, Serialize)]
pub(super) struct Role {
    pub(super) id: String,
    pub(super) project_id: String,
    pub(super) name: String,
    pub(super) skills: Vec<String>,
    pub(super) hours: f64,
    pub(super) start_date: Option<String>,
    pub(super) end_date: Option<String>,
    pub(super) bill_rate: Option<Value>,
    pub(super) created_at: String,
}

#[derive(Clone, Serialize)]
pub(super) struct Person {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) email: String,
    pub(super) skills: Vec<String>,
    pub(super) available_hours: f64,
    pub(super) cost_rate: Value,
}

#[derive(Clone, Serialize)]
pub(super) struct Assignment {
    pub(super) id: String,
    pub(super) project_id: String,
    pub(super) role_id: String,
    pub(super) person_id: String,
    pub(super) hours: f64,
    pub(super) created_at: String,
}

#[derive(Clone, Serialize)]
pub(super) struct TimeEntry {
    pub(super) id: String,
    pub(super) project_id: String,
    pub(super) person_id: String,
    pub(super) role_id: Option<String>,
    pub(super) date: String,
    pub(super) hours: f64,
    pub(super) billable: bool,
    pub(super) note: Option<String>,
    pub(super) status: String,
    pub(super) approved_at: Option<String>,
    pub(super) created_at: String,
    pub(super) updated_at: String,
    /// Place in the approved cursor, once approved.
    #[serde(skip)]
    pub(super) approval: Option<u64>,
}

pub(super) fn to_value(record: &impl Serialize) -> Value {
    serde_json::to_value(record).unwrap_or(Value::Null)
}

pub(super) fn to_values<T: Serialize>(records: &[T]) -> Vec<Value> {
    records.iter().map(to_value).collect()
}

/// What the generic handlers need to know of a stored record.
pub(super) trait Record: Serialize {
    const KIND: Kind;
    fn id(&self) -> &str;
    /// The project the record belongs to, for records that belong to one.
    fn project_id(&self) -> Option<&str> {
        None
    }
}

macro_rules! record {
    ($type:ty, $kind:expr, $($project:ident)?) => {
        impl Record for $type {
            const KIND: Kind = $kind;
            fn id(&self) -> &str {
                &self.id
            }
            $(fn project_id(&self) -> Option<&str> {
                Some(&self.$project)
            })?
        }
    };
}

record!(Role, Kind::Role, project_id);
record!(Person, Kind::Person,);
record!(Assignment, Kind::Assignment, project_id);
record!(TimeEntry, Kind::TimeEntry, project_id);

/// The record with `id`, or `404`.
pub(super) fn one<T: Record>(records: &[T], id: &str) -> Response {
    match records.iter().find(|r| r.id() == id) {
        Some(record) => axum::Json(to_value(record)).into_response(),
        None => not_found(T::KIND, id),
    }
}

/// A page of the `records` of project `project_id`, or `404` when there is no such project.
pub(super) fn page_of_project<T: Record>(
    store: &Store,
    records: &[T],
    project_id: &str,
    query: &HashMap<String, String>,
) -> Result<(StatusCode, Value), Response> {
    store.project(project_id)?;
    let matching: Vec<Value> = records
        .iter()
        .filter(|r| r.project_id() == Some(project_id))
        .map(to_value)
        .collect();
    Ok((StatusCode::OK, page(matching, query)?))
}

pub(super) fn now() -> String {
    rfc3339_millis(SystemTime::now())
}
