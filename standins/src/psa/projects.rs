//! Projects: create, list, read (by id or external id), upsert by external id and update.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::server::{
    FieldError, json_object, lock, only_known_fields, optional_date, optional_money, optional_text,
};

use super::errors::{conflict, invalid, psa_error};
use super::records::{Project, now, to_value};
use super::*;

const PROJECT_FIELDS: &[&str] = &[
    "name",
    "external_id",
    "customer",
    "status",
    "start_date",
    "budget",
];

/// The project members a request sets; absent ones stay as they are.
struct ProjectInput {
    pub(super) name: Option<String>,
    pub(super) external_id: Option<String>,
    pub(super) customer: Option<String>,
    pub(super) status: Option<String>,
    pub(super) start_date: Option<String>,
    pub(super) budget: Option<Value>,
}

fn project_input(body: &Bytes) -> Result<ProjectInput, FieldError> {
    let object = json_object(body)?;
    only_known_fields(&object, PROJECT_FIELDS)?;
    Ok(ProjectInput {
        name: optional_text(&object, "name")?,
        external_id: optional_text(&object, "external_id")?,
        customer: optional_text(&object, "customer")?,
        status: optional_text(&object, "status")?,
        start_date: optional_date(&object, "start_date")?,
        budget: optional_money(&object, "budget")?,
    })
}

fn taken_external_id(store: &Store, external_id: &str, except: Option<&str>) -> Option<String> {
    store
        .projects
        .iter()
        .find(|p| p.external_id.as_deref() == Some(external_id) && Some(p.id.as_str()) != except)
        .map(|p| p.id.clone())
}

/// Creates a project from `input`; it starts `pending`.
fn insert_project(store: &mut Store, input: ProjectInput) -> Result<Value, Response> {
    let name = input
        .name
        .ok_or_else(|| invalid(FieldError::new("name", "is required")))?;
    if let Some(status) = input.status.as_deref().filter(|s| *s != "pending") {
        return Err(invalid(FieldError::new(
            "status",
            format!("a project is created pending, not {status}; move it with PATCH afterwards"),
        )));
    }
    if let Some(external_id) = &input.external_id
        && let Some(existing) = taken_external_id(store, external_id, None)
    {
        return Err(conflict(
            "external_id",
            &format!("project {existing} already has external_id {external_id:?}"),
        ));
    }
    let created_at = now();
    let project = Project {
        id: store.next_id(Kind::Project),
        name,
        external_id: input.external_id,
        customer: input.customer,
        status: "pending".into(),
        start_date: input.start_date,
        budget: input.budget,
        created_at: created_at.clone(),
        updated_at: created_at,
    };
    let json = to_value(&project);
    store.projects.push(project);
    Ok(json)
}

/// Applies `input` to project `index`, checking the status move and external id first.
fn change_project(store: &mut Store, index: usize, input: ProjectInput) -> Result<Value, Response> {
    let current = &store.projects[index];
    if let Some(status) = &input.status {
        PROJECTS
            .check("status", &current.status, status)
            .map_err(invalid)?;
    }
    if let Some(external_id) = &input.external_id
        && let Some(existing) = taken_external_id(store, external_id, Some(&current.id))
    {
        return Err(conflict(
            "external_id",
            &format!("project {existing} already has external_id {external_id:?}"),
        ));
    }
    let project = &mut store.projects[index];
    if let Some(name) = input.name {
        project.name = name;
    }
    if input.external_id.is_some() {
        project.external_id = input.external_id;
    }
    if input.customer.is_some() {
        project.customer = input.customer;
    }
    if let Some(status) = input.status {
        project.status = status;
    }
    if input.start_date.is_some() {
        project.start_date = input.start_date;
    }
    if input.budget.is_some() {
        project.budget = input.budget;
    }
    project.updated_at = now();
    Ok(to_value(project))
}

pub(super) async fn create_project(State(state): State<Arc<PsaState>>, body: Bytes) -> Response {
    answer(project_input(&body).map_err(invalid).and_then(|input| {
        let created = insert_project(&mut lock(&state.store), input)?;
        Ok((StatusCode::CREATED, created))
    }))
}

pub(super) async fn list_projects(
    State(state): State<Arc<PsaState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let projects: Vec<Value> = lock(&state.store)
        .projects
        .iter()
        .filter(|p| wanted(&query, "status", Some(&p.status)))
        .filter(|p| wanted(&query, "external_id", p.external_id.as_deref()))
        .map(to_value)
        .collect();
    answer(page(projects, &query).map(|page| (StatusCode::OK, page)))
}

pub(super) async fn get_project(
    State(state): State<Arc<PsaState>>,
    Path(id): Path<String>,
) -> Response {
    let store = lock(&state.store);
    answer(
        store
            .project(&id)
            .map(|i| (StatusCode::OK, to_value(&store.projects[i]))),
    )
}

pub(super) async fn get_project_by_external_id(
    State(state): State<Arc<PsaState>>,
    Path(external_id): Path<String>,
) -> Response {
    let store = lock(&state.store);
    match store
        .projects
        .iter()
        .find(|p| p.external_id.as_deref() == Some(external_id.as_str()))
    {
        Some(project) => axum::Json(to_value(project)).into_response(),
        None => psa_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no project has external_id {external_id:?}"),
            None,
        ),
    }
}

pub(super) async fn upsert_project(
    State(state): State<Arc<PsaState>>,
    Path(external_id): Path<String>,
    body: Bytes,
) -> Response {
    answer(project_input(&body).map_err(invalid).and_then(|mut input| {
        if input
            .external_id
            .as_deref()
            .is_some_and(|e| e != external_id)
        {
            return Err(invalid(FieldError::new(
                "external_id",
                format!("must be absent or {external_id:?}, the external id in the path"),
            )));
        }
        input.external_id = Some(external_id.clone());
        let mut store = lock(&state.store);
        match taken_external_id(&store, &external_id, None) {
            Some(id) => {
                let index = store.project(&id)?;
                Ok((StatusCode::OK, change_project(&mut store, index, input)?))
            }
            None => Ok((StatusCode::CREATED, insert_project(&mut store, input)?)),
        }
    }))
}

pub(super) async fn update_project(
    State(state): State<Arc<PsaState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    answer(project_input(&body).map_err(invalid).and_then(|input| {
        let mut store = lock(&state.store);
        let index = store.project(&id)?;
        Ok((StatusCode::OK, change_project(&mut store, index, input)?))
    }))
}
