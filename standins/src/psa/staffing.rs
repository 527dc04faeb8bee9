//! Staffing: roles on a project, assignments of people to roles, and the people directory.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::server::{
    FieldError, json_object, lock, only_known_fields, optional_date, optional_money,
    optional_number, required_text,
};

use super::errors::{conflict, invalid, not_found};
use super::records::{Assignment, Project, Role, now, one, page_of_project, to_value};
use super::*;

/// Refuses to staff a project that is over.
fn open_for_staffing(project: &Project) -> Result<(), Response> {
    if project.status == "pending" || project.status == "active" {
        Ok(())
    } else {
        Err(invalid(FieldError::new(
            "project_id",
            format!(
                "project {} is {}; roles and assignments can only be added while it is pending \
                 or active",
                project.id, project.status
            ),
        )))
    }
}

fn skills(object: &Map<String, Value>) -> Result<Vec<String>, FieldError> {
    let Some(list) = object.get("skills") else {
        return Ok(Vec::new());
    };
    let not_a_list = || FieldError::new("skills", "must be a list of non-blank strings");
    let list = list.as_array().ok_or_else(not_a_list)?;
    list.iter()
        .map(|s| {
            s.as_str()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(not_a_list)
        })
        .collect()
}

/// Member `field` as a positive number of hours: `Ok(None)` when absent.
pub(super) fn optional_hours(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Option<f64>, FieldError> {
    match optional_number(object, field)? {
        Some(hours) if hours <= 0.0 => Err(FieldError::new(field, "must be more than 0")),
        hours => Ok(hours),
    }
}

struct RoleInput {
    pub(super) name: String,
    pub(super) skills: Vec<String>,
    pub(super) hours: f64,
    pub(super) start_date: Option<String>,
    pub(super) end_date: Option<String>,
    pub(super) bill_rate: Option<Value>,
}

fn role_input(body: &Bytes) -> Result<RoleInput, FieldError> {
    let object = json_object(body)?;
    only_known_fields(
        &object,
        &[
            "name",
            "skills",
            "hours",
            "start_date",
            "end_date",
            "bill_rate",
        ],
    )?;
    let input = RoleInput {
        name: required_text(&object, "name")?,
        skills: skills(&object)?,
        hours: optional_hours(&object, "hours")?
            .ok_or_else(|| FieldError::new("hours", "is required"))?,
        start_date: optional_date(&object, "start_date")?,
        end_date: optional_date(&object, "end_date")?,
        bill_rate: optional_money(&object, "bill_rate")?,
    };
    if let (Some(start), Some(end)) = (&input.start_date, &input.end_date)
        && end < start
    {
        return Err(FieldError::new(
            "end_date",
            format!("{end} is before start_date {start}"),
        ));
    }
    Ok(input)
}

pub(super) async fn create_role(
    State(state): State<Arc<PsaState>>,
    Path(project_id): Path<String>,
    body: Bytes,
) -> Response {
    answer(role_input(&body).map_err(invalid).and_then(|input| {
        let mut store = lock(&state.store);
        let project = store.project(&project_id)?;
        open_for_staffing(&store.projects[project])?;
        let role = Role {
            id: store.next_id(Kind::Role),
            project_id,
            name: input.name,
            skills: input.skills,
            hours: input.hours,
            start_date: input.start_date,
            end_date: input.end_date,
            bill_rate: input.bill_rate,
            created_at: now(),
        };
        let json = to_value(&role);
        store.roles.push(role);
        Ok((StatusCode::CREATED, json))
    }))
}

pub(super) async fn list_roles(
    State(state): State<Arc<PsaState>>,
    Path(project_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let store = lock(&state.store);
    answer(page_of_project(&store, &store.roles, &project_id, &query))
}

fn assignment_input(body: &Bytes) -> Result<(String, String, Option<f64>), FieldError> {
    let object = json_object(body)?;
    only_known_fields(&object, &["role_id", "person_id", "hours"])?;
    Ok((
        required_text(&object, "role_id")?,
        required_text(&object, "person_id")?,
        optional_hours(&object, "hours")?,
    ))
}

pub(super) async fn create_assignment(
    State(state): State<Arc<PsaState>>,
    Path(project_id): Path<String>,
    body: Bytes,
) -> Response {
    answer(
        assignment_input(&body)
            .map_err(invalid)
            .and_then(|(role_id, person_id, hours)| {
                let mut store = lock(&state.store);
                let project = store.project(&project_id)?;
                open_for_staffing(&store.projects[project])?;
                let Some(role) = store
                    .roles
                    .iter()
                    .find(|r| r.id == role_id && r.project_id == project_id)
                else {
                    return Err(invalid(FieldError::new(
                        "role_id",
                        format!("project {project_id} has no role {role_id}"),
                    )));
                };
                let hours = hours.unwrap_or(role.hours);
                if !store.people.iter().any(|p| p.id == person_id) {
                    return Err(invalid(FieldError::new(
                        "person_id",
                        format!("there is no person {person_id}"),
                    )));
                }
                if let Some(existing) = store
                    .assignments
                    .iter()
                    .find(|a| a.role_id == role_id && a.person_id == person_id)
                {
                    return Err(conflict(
                        "person_id",
                        &format!(
                            "person {person_id} already fills role {role_id} (assignment {})",
                            existing.id
                        ),
                    ));
                }
                let assignment = Assignment {
                    id: store.next_id(Kind::Assignment),
                    project_id,
                    role_id,
                    person_id,
                    hours,
                    created_at: now(),
                };
                let json = to_value(&assignment);
                store.assignments.push(assignment);
                Ok((StatusCode::CREATED, json))
            }),
    )
}

pub(super) async fn list_assignments(
    State(state): State<Arc<PsaState>>,
    Path(project_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let store = lock(&state.store);
    answer(page_of_project(
        &store,
        &store.assignments,
        &project_id,
        &query,
    ))
}

pub(super) async fn get_assignment(
    State(state): State<Arc<PsaState>>,
    Path(id): Path<String>,
) -> Response {
    one(&lock(&state.store).assignments, &id)
}

pub(super) async fn delete_assignment(
    State(state): State<Arc<PsaState>>,
    Path(id): Path<String>,
) -> Response {
    let mut store = lock(&state.store);
    match store.assignments.iter().position(|a| a.id == id) {
        Some(index) => {
            store.assignments.remove(index);
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found(Kind::Assignment, &id),
    }
}

pub(super) async fn list_people(
    State(state): State<Arc<PsaState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let skill = query.get("skill").map(|s| s.to_lowercase());
    let people: Vec<Value> = lock(&state.store)
        .people
        .iter()
        .filter(|p| {
            skill
                .as_ref()
                .is_none_or(|wanted| p.skills.iter().any(|s| s.to_lowercase() == *wanted))
        })
        .map(to_value)
        .collect();
    answer(page(people, &query).map(|page| (StatusCode::OK, page)))
}

pub(super) async fn get_person(
    State(state): State<Arc<PsaState>>,
    Path(id): Path<String>,
) -> Response {
    one(&lock(&state.store).people, &id)
}
