//! Assignments: creating and deleting one or several (the saga
//! compensations of the creates).

use junction_sdk::http::Request;
use junction_sdk::{Context, Error, JsonSchema, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::{create, segment, send, url};
use crate::projects::Identified;

/// An assignment as the PSA returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Assignment {
    /// The PSA's id, e.g. `4001`.
    pub(crate) id: String,
    /// The project's id.
    pub(crate) project_id: String,
    /// The role's id.
    pub(crate) role_id: String,
    /// The person's id.
    pub(crate) person_id: String,
    /// Hours assigned.
    pub(crate) hours: f64,
    /// RFC 3339.
    pub(crate) created_at: String,
}

/// Input of `create-assignment`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateAssignment {
    /// The PSA id of the project.
    pub(crate) project_id: String,
    /// The PSA id of the role (see `add-roles`' `role_ids`).
    pub(crate) role_id: String,
    /// The PSA id of the person (a resource's `id`).
    pub(crate) person_id: String,
    /// Hours; the role's hours when absent.
    #[serde(default)]
    pub(crate) hours: Option<f64>,
}

pub(crate) fn create_assignment(ctx: &Context, input: CreateAssignment) -> Result<Assignment> {
    let assignment = NewAssignment {
        role_id: input.role_id,
        person_id: input.person_id,
        hours: input.hours,
    };
    post_assignment(
        ctx,
        &input.project_id,
        &assignment,
        ctx.idempotency_key.clone(),
    )
}

/// Creates `assignment` on project `project_id` with the idempotency key `key`.
pub(crate) fn post_assignment(
    ctx: &Context,
    project_id: &str,
    assignment: &NewAssignment,
    key: Option<String>,
) -> Result<Assignment> {
    let path = format!(
        "/projects/{}/assignments",
        segment("project_id", project_id)?
    );
    let mut body = json!({ "role_id": assignment.role_id, "person_id": assignment.person_id });
    if let Some(hours) = assignment.hours {
        body["hours"] = json!(hours);
    }
    create(Request::post(url(ctx, &path)?).json(&body)?, key)?.json()
}

/// Input of `delete-assignment`: `id`, or, as a saga compensation, the
/// `{input, output}` of the step that created it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteAssignment {
    /// The PSA id of the assignment.
    #[serde(default)]
    pub(crate) id: Option<String>,
    /// As a compensation: the assignment `create-assignment` returned.
    #[serde(default)]
    pub(crate) output: Option<Identified>,
    /// As a compensation: the input of that step (not used).
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) input: Option<Value>,
}

/// The outcome of `delete-assignment`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Deleted {
    /// The assignment's id.
    pub(crate) id: String,
    /// False when it was already gone (a retried or repeated delete).
    pub(crate) deleted: bool,
}

pub(crate) fn delete_assignment(ctx: &Context, input: DeleteAssignment) -> Result<Deleted> {
    let id = match (input.id, input.output) {
        (Some(id), _) => id,
        (None, Some(output)) => output.id,
        (None, None) => {
            return Err(Error::InvalidInput(
                "give the assignment's `id` (or a compensation's `output`)".into(),
            ));
        }
    };
    let path = format!("/assignments/{}", segment("id", &id)?);
    match send(Request::delete(url(ctx, &path)?)) {
        Ok(_) => Ok(Deleted { id, deleted: true }),
        Err(Error::NotFound(_)) => Ok(Deleted { id, deleted: false }),
        Err(error) => Err(error),
    }
}

/// One assignment of `create-assignments`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAssignment {
    /// The PSA id of the role.
    pub(crate) role_id: String,
    /// The PSA id of the person.
    pub(crate) person_id: String,
    /// Hours; the role's hours when absent.
    #[serde(default)]
    pub(crate) hours: Option<f64>,
}

/// Input of `create-assignments`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateAssignments {
    /// The PSA id of the project.
    pub(crate) project_id: String,
    /// The assignments, in order.
    pub(crate) assignments: Vec<NewAssignment>,
}

/// What `create-assignments` made.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Assignments {
    /// The assignments as the PSA created them, in input order.
    pub(crate) assignments: Vec<Assignment>,
}

/// Creates each assignment in order. With an idempotency key, the n-th is
/// sent with `<key>:<n>`, so a retried step (or a replayed run) gets back
/// the assignments the first attempt made instead of making new ones, however
/// far that attempt got.
pub(crate) fn create_assignments(ctx: &Context, input: CreateAssignments) -> Result<Assignments> {
    let mut made = Vec::with_capacity(input.assignments.len());
    for (n, assignment) in input.assignments.iter().enumerate() {
        let key = ctx.idempotency_key.as_ref().map(|k| format!("{k}:{n}"));
        made.push(post_assignment(ctx, &input.project_id, assignment, key)?);
    }
    Ok(Assignments { assignments: made })
}

/// Input of `delete-assignments`: `ids`, or, as a saga compensation, the
/// `{input, output}` of the `create-assignments` step.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteAssignments {
    /// The PSA ids of the assignments.
    #[serde(default)]
    pub(crate) ids: Option<Vec<String>>,
    /// As a compensation: what `create-assignments` returned.
    #[serde(default)]
    pub(crate) output: Option<Assignments>,
    /// As a compensation: the input of that step (not used).
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) input: Option<Value>,
}

/// What `delete-assignments` did.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct DeletedAll {
    /// Each assignment and whether it was still there to delete.
    pub(crate) deleted: Vec<Deleted>,
}

pub(crate) fn delete_assignments(ctx: &Context, input: DeleteAssignments) -> Result<DeletedAll> {
    let ids = match (input.ids, input.output) {
        (Some(ids), _) => ids,
        (None, Some(output)) => output.assignments.into_iter().map(|a| a.id).collect(),
        (None, None) => {
            return Err(Error::InvalidInput(
                "give the assignments' `ids` (or a compensation's `output`)".into(),
            ));
        }
    };
    let mut deleted = Vec::with_capacity(ids.len());
    for id in ids {
        deleted.push(delete_assignment(
            ctx,
            DeleteAssignment {
                id: Some(id),
                output: None,
                input: None,
            },
        )?);
    }
    Ok(DeletedAll { deleted })
}
