//! Time entries: create, update, the submit/approve lifecycle, and the approved-time feed.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::server::{
    FieldError, json_object, lock, only_known_fields, optional_date, optional_text, query_number,
};

use super::errors::{invalid, not_found};
use super::records::{TimeEntry, now, one, to_value};
use super::staffing::optional_hours;
use super::*;

const TIME_ENTRY_FIELDS: &[&str] = &[
    "project_id",
    "person_id",
    "role_id",
    "date",
    "hours",
    "billable",
    "note",
    "status",
];

/// What a time entry request sets; absent members stay as they are.
struct TimeEntryInput {
    pub(super) project_id: Option<String>,
    pub(super) person_id: Option<String>,
    pub(super) role_id: Option<String>,
    pub(super) date: Option<String>,
    pub(super) hours: Option<f64>,
    pub(super) billable: Option<bool>,
    pub(super) note: Option<String>,
    pub(super) status: Option<String>,
}

fn time_entry_input(body: &Bytes) -> Result<TimeEntryInput, FieldError> {
    let object = json_object(body)?;
    only_known_fields(&object, TIME_ENTRY_FIELDS)?;
    let hours = optional_hours(&object, "hours")?;
    if hours.is_some_and(|h| h > 24.0) {
        return Err(FieldError::new("hours", "must be at most 24 in one entry"));
    }
    let billable = match object.get("billable") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(FieldError::new("billable", "must be true or false")),
    };
    Ok(TimeEntryInput {
        project_id: optional_text(&object, "project_id")?,
        person_id: optional_text(&object, "person_id")?,
        role_id: optional_text(&object, "role_id")?,
        date: optional_date(&object, "date")?,
        hours,
        billable,
        note: optional_text(&object, "note")?,
        status: optional_text(&object, "status")?,
    })
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, Response> {
    value.ok_or_else(|| invalid(FieldError::new(field, "is required")))
}

/// Gives an entry that has just been approved its approval time and place in the cursor.
fn stamp_approval(store: &mut Store, index: usize) {
    store.approvals += 1;
    let entry = &mut store.time_entries[index];
    entry.approval = Some(store.approvals);
    entry.approved_at = Some(now());
}

pub(super) async fn create_time_entry(State(state): State<Arc<PsaState>>, body: Bytes) -> Response {
    answer(time_entry_input(&body).map_err(invalid).and_then(|input| {
        let project_id = required(input.project_id, "project_id")?;
        let person_id = required(input.person_id, "person_id")?;
        let date = required(input.date, "date")?;
        let hours = required(input.hours, "hours")?;
        let status = input.status.unwrap_or_else(|| "draft".into());
        if status != "draft" && status != "submitted" {
            return Err(invalid(FieldError::new(
                "status",
                format!("a time entry is created draft or submitted, not {status}"),
            )));
        }
        let mut store = lock(&state.store);
        let Some(project) = store.projects.iter().find(|p| p.id == project_id) else {
            return Err(invalid(FieldError::new(
                "project_id",
                format!("there is no project {project_id}"),
            )));
        };
        if project.status != "active" {
            return Err(invalid(FieldError::new(
                "project_id",
                format!(
                    "project {project_id} is {}; time can only be logged on an active project",
                    project.status
                ),
            )));
        }
        if !store.people.iter().any(|p| p.id == person_id) {
            return Err(invalid(FieldError::new(
                "person_id",
                format!("there is no person {person_id}"),
            )));
        }
        if let Some(role_id) = &input.role_id
            && !store
                .roles
                .iter()
                .any(|r| r.id == *role_id && r.project_id == project_id)
        {
            return Err(invalid(FieldError::new(
                "role_id",
                format!("project {project_id} has no role {role_id}"),
            )));
        }
        let created_at = now();
        let entry = TimeEntry {
            id: store.next_id(Kind::TimeEntry),
            project_id,
            person_id,
            role_id: input.role_id,
            date,
            hours,
            billable: input.billable.unwrap_or(true),
            note: input.note,
            status,
            approved_at: None,
            created_at: created_at.clone(),
            updated_at: created_at,
            approval: None,
        };
        let json = to_value(&entry);
        store.time_entries.push(entry);
        Ok((StatusCode::CREATED, json))
    }))
}

pub(super) async fn update_time_entry(
    State(state): State<Arc<PsaState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    answer(time_entry_input(&body).map_err(invalid).and_then(|input| {
        let mut store = lock(&state.store);
        let Some(index) = store.time_entries.iter().position(|e| e.id == id) else {
            return Err(not_found(Kind::TimeEntry, &id));
        };
        let current = &store.time_entries[index];
        for (field, set) in [
            ("project_id", input.project_id.is_some()),
            ("person_id", input.person_id.is_some()),
            ("role_id", input.role_id.is_some()),
        ] {
            if set {
                return Err(invalid(FieldError::new(
                    field,
                    "cannot be changed; log a new entry instead",
                )));
            }
        }
        let edits = input.date.is_some()
            || input.hours.is_some()
            || input.billable.is_some()
            || input.note.is_some();
        if edits && current.status != "draft" && current.status != "rejected" {
            return Err(invalid(FieldError::new(
                "status",
                format!(
                    "time entry {id} is {}; only draft or rejected entries can be edited",
                    current.status
                ),
            )));
        }
        if let Some(status) = &input.status {
            TIME_ENTRIES
                .check("status", &current.status, status)
                .map_err(invalid)?;
        }
        let newly_approved =
            input.status.as_deref() == Some("approved") && current.status != "approved";
        let entry = &mut store.time_entries[index];
        if let Some(date) = input.date {
            entry.date = date;
        }
        if let Some(hours) = input.hours {
            entry.hours = hours;
        }
        if let Some(billable) = input.billable {
            entry.billable = billable;
        }
        if input.note.is_some() {
            entry.note = input.note;
        }
        if let Some(status) = input.status {
            entry.status = status;
        }
        entry.updated_at = now();
        if newly_approved {
            stamp_approval(&mut store, index);
        }
        Ok((StatusCode::OK, to_value(&store.time_entries[index])))
    }))
}

pub(super) async fn get_time_entry(
    State(state): State<Arc<PsaState>>,
    Path(id): Path<String>,
) -> Response {
    one(&lock(&state.store).time_entries, &id)
}

pub(super) async fn list_time_entries(
    State(state): State<Arc<PsaState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let entries: Vec<Value> = lock(&state.store)
        .time_entries
        .iter()
        .filter(|e| wanted(&query, "project_id", Some(&e.project_id)))
        .filter(|e| wanted(&query, "person_id", Some(&e.person_id)))
        .filter(|e| wanted(&query, "status", Some(&e.status)))
        .map(to_value)
        .collect();
    answer(page(entries, &query).map(|page| (StatusCode::OK, page)))
}

pub(super) async fn approved_time_entries(
    State(state): State<Arc<PsaState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    answer(approved_page(&state, &query))
}

/// Entries approved after cursor `since`, in approval order.
fn approved_page(
    state: &PsaState,
    query: &HashMap<String, String>,
) -> Result<(StatusCode, Value), Response> {
    let since = query_number(query, "since", 0)
        .map_err(invalid)?
        .unwrap_or(0);
    let limit = query_number(query, "limit", 1)
        .map_err(invalid)?
        .unwrap_or(DEFAULT_APPROVED_LIMIT);
    if limit > MAX_APPROVED_LIMIT {
        return Err(invalid(FieldError::new(
            "limit",
            format!("must be at most {MAX_APPROVED_LIMIT}"),
        )));
    }
    let store = lock(&state.store);
    if since > store.approvals {
        return Err(invalid(FieldError::new(
            "since",
            format!("{since} is not a cursor this server gave out"),
        )));
    }
    let mut approved: Vec<(u64, &TimeEntry)> = store
        .time_entries
        .iter()
        .filter_map(|e| e.approval.filter(|a| *a > since).map(|a| (a, e)))
        .collect();
    approved.sort_by_key(|(approval, _)| *approval);
    let take = usize::try_from(limit).unwrap_or(usize::MAX);
    let has_more = approved.len() > take;
    approved.truncate(take);
    let next_cursor = approved.last().map_or(since, |(approval, _)| *approval);
    let results: Vec<Value> = approved.iter().map(|(_, e)| to_value(e)).collect();
    Ok((
        StatusCode::OK,
        json!({
            "results": results,
            "next_cursor": next_cursor.to_string(),
            "has_more": has_more,
        }),
    ))
}
