//! Projects: `upsert-project`, `get-project` and the status moves.

use junction_sdk::canonical::Money;
use junction_sdk::http::Request;
use junction_sdk::{Context, Error, JsonSchema, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::{segment, send, url};

/// Where a project stands in the PSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    /// Agreed, not started.
    Pending,
    /// Under way: time can be logged.
    Active,
    /// Delivered.
    Closed,
    /// Stopped for good.
    Cancelled,
}

/// A project as the PSA returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Project {
    /// The PSA's id, e.g. `1001`.
    pub(crate) id: String,
    /// Name.
    pub(crate) name: String,
    /// The caller's id of the project (e.g. the CRM deal's), when it has one.
    pub(crate) external_id: Option<String>,
    /// Name of the customer.
    pub(crate) customer: Option<String>,
    /// `pending`, `active`, `closed` or `cancelled`.
    pub(crate) status: Status,
    /// Planned start, `YYYY-MM-DD`.
    pub(crate) start_date: Option<String>,
    /// Agreed budget.
    pub(crate) budget: Option<Money>,
    /// RFC 3339.
    pub(crate) created_at: String,
    /// RFC 3339.
    pub(crate) updated_at: String,
}

/// Input of `upsert-project`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpsertProject {
    /// The caller's id of the project, e.g. `hubspot-9876543201`: the project
    /// is created the first time and updated after.
    pub(crate) external_id: String,
    /// Name.
    pub(crate) name: String,
    /// Name of the customer.
    #[serde(default)]
    pub(crate) customer: Option<String>,
    /// Planned start, `YYYY-MM-DD`.
    #[serde(default)]
    pub(crate) start_date: Option<String>,
    /// Agreed budget.
    #[serde(default)]
    pub(crate) budget: Option<Money>,
    /// A status to move the project to (a new project is created `pending`,
    /// then moved).
    #[serde(default)]
    pub(crate) status: Option<Status>,
}

/// A project and whether this call created it.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Upserted {
    /// True when the project did not exist before.
    pub(crate) created: bool,
    #[serde(flatten)]
    pub(crate) project: Project,
}

pub(crate) fn upsert_project(ctx: &Context, input: UpsertProject) -> Result<Upserted> {
    let path = format!(
        "/projects/external_id/{}",
        segment("external_id", &input.external_id)?
    );
    let mut body = serde_json::Map::new();
    body.insert("name".into(), json!(input.name));
    for (key, value) in [
        ("customer", input.customer.map(Value::from)),
        ("start_date", input.start_date.map(Value::from)),
        ("budget", input.budget.map(|b| json!(b))),
    ] {
        if let Some(value) = value {
            body.insert(key.into(), value);
        }
    }
    let response = send(Request::put(url(ctx, &path)?).json(&body)?)?;
    let created = response.status == 201;
    let mut project: Project = response.json()?;
    // The PSA creates every project pending; a status is a move after.
    if let Some(status) = input.status
        && status != project.status
    {
        project = move_to(ctx, &project.id, status)?;
    }
    Ok(Upserted { created, project })
}

/// The `id` of a record another step returned.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct Identified {
    /// The PSA's id.
    pub(crate) id: String,
}

/// Which project: exactly one of `id` and `external_id`, or, as a saga
/// compensation, the `{input, output}` of the step that made it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProjectRef {
    /// The PSA's id, e.g. `1001`.
    #[serde(default)]
    pub(crate) id: Option<String>,
    /// The caller's id of the project.
    #[serde(default)]
    pub(crate) external_id: Option<String>,
    /// As a compensation: the output of the step that made the project; its
    /// `id` is used.
    #[serde(default)]
    pub(crate) output: Option<Identified>,
    /// As a compensation: the input of that step (not used).
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) input: Option<Value>,
}

/// A project named by the PSA's id or by the caller's external id.
pub(crate) enum Target {
    Id(String),
    External(String),
}

impl ProjectRef {
    pub(crate) fn target(self) -> Result<Target> {
        match (self.id, self.external_id, self.output) {
            (Some(id), None, _) => Ok(Target::Id(id)),
            (None, Some(external_id), _) => Ok(Target::External(external_id)),
            (None, None, Some(output)) => Ok(Target::Id(output.id)),
            _ => Err(Error::InvalidInput(
                "give exactly one of `id` and `external_id` (or a compensation's `output`)".into(),
            )),
        }
    }
}

pub(crate) fn find_project(ctx: &Context, external_id: &str) -> Result<Project> {
    let path = format!(
        "/projects/external_id/{}",
        segment("external_id", external_id)?
    );
    send(Request::get(url(ctx, &path)?))?.json()
}

pub(crate) fn project_url(ctx: &Context, id: &str) -> Result<String> {
    url(ctx, &format!("/projects/{}", segment("id", id)?))
}

pub(crate) fn get_project(ctx: &Context, target: ProjectRef) -> Result<Project> {
    match target.target()? {
        Target::Id(id) => send(Request::get(project_url(ctx, &id)?))?.json(),
        Target::External(external_id) => find_project(ctx, &external_id),
    }
}

/// Input of `set-project-status`: the status and exactly one of `id` and
/// `external_id`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetStatus {
    /// The status to move to.
    pub(crate) status: Status,
    /// The PSA's id of the project.
    #[serde(default)]
    pub(crate) id: Option<String>,
    /// The caller's id of the project.
    #[serde(default)]
    pub(crate) external_id: Option<String>,
}

pub(crate) fn set_project_status(ctx: &Context, input: SetStatus) -> Result<Project> {
    let target = ProjectRef {
        id: input.id,
        external_id: input.external_id,
        output: None,
        input: None,
    };
    move_project(ctx, target, input.status)
}

/// Moves a project to `status`; moving it to the status it has changes nothing.
pub(crate) fn move_project(ctx: &Context, target: ProjectRef, status: Status) -> Result<Project> {
    let id = match target.target()? {
        Target::Id(id) => id,
        Target::External(external_id) => find_project(ctx, &external_id)?.id,
    };
    move_to(ctx, &id, status)
}

pub(crate) fn move_to(ctx: &Context, id: &str, status: Status) -> Result<Project> {
    send(Request::patch(project_url(ctx, id)?).json(&json!({ "status": status }))?)?.json()
}
