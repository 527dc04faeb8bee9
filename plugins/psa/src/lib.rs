//! PSA connector: projects, roles, people, assignments and approved time
//! entries over a professional-services automation tool's REST API (the
//! Kantata OX conventions: `/api/v1`, OAuth bearer tokens, string ids,
//! `page`/`per_page` paging, errors as `{"errors": [{"type", "message",
//! "field"}]}`).
//!
//! Connection settings: `base_url`, the PSA's address without the API path
//! (e.g. `https://api.mavenlink.com`), and `page_size` (records per page of
//! a stream, 1 to 200, 100 by default). The host adds the access token; this
//! plugin never sees it.
//!
//! Projects, roles, assignments and time entries are the PSA's own shapes
//! (`{"id", "project_id", "person_id", "role_id", "date", "hours",
//! "billable", "status", ...}`); people are canonical v1 `Resource`s, the
//! shape the resource optimizer staffs, with the PSA person id as `id`. Roles
//! are added from canonical v1 `Role`s.
//!
//! Creates (`add-roles`, `create-assignment`, `create-assignments`) carry the
//! call's idempotency key as `Idempotency-Key` (per role `{key}:role:{role
//! id}`, per assignment of a batch `{key}:{n}`), so a retried step creates
//! each record once; upserts and status moves are idempotent by nature.
//! `cancel-project`, `delete-assignment` and `delete-assignments` undo
//! `upsert-project`, `create-assignment` and `create-assignments` in a saga:
//! each takes ids, or the `{input, output}` a compensation is fed.
//!
//! Streams (`read`, and the `read` operation): `approved-time-entries`,
//! entries approved after the cursor in approval order (the cursor is the
//! PSA's `since`: keep the last `next_cursor` and read from it later to get
//! only newly approved time), and `people` (the cursor is the next page).
//!
//! Errors: 401 is unauthorized, 404 not found, 409 a conflict naming the
//! field, 400 and 422 invalid input naming the field (an illegal status
//! move names `status`), 429 rate limited after `Retry-After`, 5xx
//! unavailable.

use std::collections::BTreeMap;

use junction_sdk::canonical::{Money, Resource, Role};
use junction_sdk::http::{Request, Response, encode_component};
use junction_sdk::{
    Connector, Context, Error, JsonSchema, Operation, Operations, Page, Result, rest,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

struct Psa;

impl Connector for Psa {
    fn operations() -> Operations {
        Operations::new()
            .with(
                Operation::new(
                    "upsert-project",
                    "Creates or updates the project with an external id",
                    upsert_project,
                )
                .idempotent()
                .undo("cancel-project"),
            )
            .with(
                Operation::new(
                    "get-project",
                    "Reads a project by id or external id",
                    get_project,
                )
                .idempotent(),
            )
            .with(
                Operation::new(
                    "set-project-status",
                    "Moves a project to a status: pending, active, closed or cancelled",
                    set_project_status,
                )
                .idempotent(),
            )
            .with(
                Operation::new(
                    "activate-project",
                    "Moves a project to active",
                    |ctx: &Context, target: ProjectRef| move_project(ctx, target, Status::Active),
                )
                .idempotent(),
            )
            .with(
                Operation::new(
                    "cancel-project",
                    "Moves a project to cancelled (the compensation of upsert-project)",
                    |ctx: &Context, target: ProjectRef| {
                        move_project(ctx, target, Status::Cancelled)
                    },
                )
                .idempotent(),
            )
            .with(
                Operation::new(
                    "add-roles",
                    "Adds open roles (canonical v1 roles) to a project",
                    add_roles,
                )
                .idempotent(),
            )
            .with(
                Operation::new(
                    "list-roles",
                    "Lists every role of a project, with bill rates",
                    list_roles,
                )
                .idempotent(),
            )
            .with(
                Operation::new(
                    "list-people",
                    "Lists one page of people as canonical v1 resources, optionally with a skill",
                    list_people,
                )
                .idempotent(),
            )
            .with(
                Operation::new(
                    "create-assignment",
                    "Staffs a person on a role of a project",
                    create_assignment,
                )
                .idempotent()
                .undo("delete-assignment"),
            )
            .with(
                Operation::new(
                    "delete-assignment",
                    "Deletes an assignment (the compensation of create-assignment)",
                    delete_assignment,
                )
                .idempotent(),
            )
            .with(
                Operation::new(
                    "create-assignments",
                    "Staffs several people at once, e.g. a staffing plan's assignments",
                    create_assignments,
                )
                .idempotent()
                .undo("delete-assignments"),
            )
            .with(
                Operation::new(
                    "delete-assignments",
                    "Deletes several assignments (the compensation of create-assignments)",
                    delete_assignments,
                )
                .idempotent(),
            )
            .with(Operation::read::<Psa>())
    }

    fn check(ctx: &Context) -> Result<()> {
        send(Request::get(url(ctx, "/projects?per_page=1")?)).map(drop)
    }

    fn read(ctx: &Context, stream: &str, cursor: Option<String>) -> Result<Page> {
        match stream {
            APPROVED_TIME => read_approved_time(ctx, cursor),
            PEOPLE => read_people(ctx, cursor),
            other => Err(rest::unknown_stream(other, &[APPROVED_TIME, PEOPLE])),
        }
    }

    fn config_schema() -> String {
        junction_sdk::schema_of::<Config>()
    }
}

junction_sdk::export_connector!(Psa);

/// Settings of a PSA connection.
#[derive(JsonSchema)]
// Only its schema is used: settings are read one by one through the context.
#[allow(dead_code)]
struct Config {
    /// The PSA's address without the API path, e.g. `https://api.mavenlink.com`.
    base_url: String,
    /// Records per page of a stream, 1 to 200; 100 by default.
    page_size: Option<String>,
}

const API_PATH: &str = "/api/v1";
const APPROVED_TIME: &str = "approved-time-entries";
const PEOPLE: &str = "people";
/// The largest page the PSA serves.
const MAX_PAGE_SIZE: u32 = 200;
const DEFAULT_PAGE_SIZE: u32 = 100;

fn url(ctx: &Context, path: &str) -> Result<String> {
    let base = ctx.require_config("base_url")?;
    Ok(format!("{}{API_PATH}{path}", base.trim_end_matches('/')))
}

/// `value` as one path segment; an empty id is the caller's mistake.
fn segment(field: &str, value: &str) -> Result<String> {
    if value.trim().is_empty() {
        return Err(Error::InvalidInput(format!("`{field}` must not be empty")));
    }
    Ok(encode_component(value.trim()))
}

/// Sends `request` and passes a 2xx response through; every other status
/// becomes the error case the PSA's answer says.
fn send(request: Request) -> Result<Response> {
    let response = request.header("accept", "application/json").send()?;
    if response.is_success() {
        return Ok(response);
    }
    Err(failure(response))
}

/// Sends a create with the idempotency key `key`, when there is one.
fn create(request: Request, key: Option<String>) -> Result<Response> {
    match key {
        Some(key) => send(request.header("Idempotency-Key", key)),
        None => send(request),
    }
}

/// The PSA's error body.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorItem {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    field: Option<String>,
}

/// The error case of a failed request: the status decides the case, the
/// PSA's body the message.
fn failure(response: Response) -> Error {
    let body: ErrorBody = serde_json::from_slice(&response.body).unwrap_or_default();
    if body.errors.is_empty() {
        return rest::refusal(&response, &response.text());
    }
    let described: Vec<String> = body
        .errors
        .iter()
        .map(|e| match &e.field {
            Some(field) => format!("`{field}`: {} ({})", e.message, e.kind),
            None => format!("{} ({})", e.message, e.kind),
        })
        .collect();
    let message = format!("the PSA refused the request: {}", described.join("; "));
    rest::refusal(&response, &message)
}

/// Where a project stands in the PSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Status {
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
struct Project {
    /// The PSA's id, e.g. `1001`.
    id: String,
    /// Name.
    name: String,
    /// The caller's id of the project (e.g. the CRM deal's), when it has one.
    external_id: Option<String>,
    /// Name of the customer.
    customer: Option<String>,
    /// `pending`, `active`, `closed` or `cancelled`.
    status: Status,
    /// Planned start, `YYYY-MM-DD`.
    start_date: Option<String>,
    /// Agreed budget.
    budget: Option<Money>,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339.
    updated_at: String,
}

/// Input of `upsert-project`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpsertProject {
    /// The caller's id of the project, e.g. `hubspot-9876543201`: the project
    /// is created the first time and updated after.
    external_id: String,
    /// Name.
    name: String,
    /// Name of the customer.
    #[serde(default)]
    customer: Option<String>,
    /// Planned start, `YYYY-MM-DD`.
    #[serde(default)]
    start_date: Option<String>,
    /// Agreed budget.
    #[serde(default)]
    budget: Option<Money>,
    /// A status to move the project to (a new project is created `pending`,
    /// then moved).
    #[serde(default)]
    status: Option<Status>,
}

/// A project and whether this call created it.
#[derive(Debug, Serialize, JsonSchema)]
struct Upserted {
    /// True when the project did not exist before.
    created: bool,
    #[serde(flatten)]
    project: Project,
}

fn upsert_project(ctx: &Context, input: UpsertProject) -> Result<Upserted> {
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
struct Identified {
    /// The PSA's id.
    id: String,
}

/// Which project: exactly one of `id` and `external_id`, or, as a saga
/// compensation, the `{input, output}` of the step that made it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ProjectRef {
    /// The PSA's id, e.g. `1001`.
    #[serde(default)]
    id: Option<String>,
    /// The caller's id of the project.
    #[serde(default)]
    external_id: Option<String>,
    /// As a compensation: the output of the step that made the project; its
    /// `id` is used.
    #[serde(default)]
    output: Option<Identified>,
    /// As a compensation: the input of that step (not used).
    #[serde(default)]
    #[allow(dead_code)]
    input: Option<Value>,
}

/// A project named by the PSA's id or by the caller's external id.
enum Target {
    Id(String),
    External(String),
}

impl ProjectRef {
    fn target(self) -> Result<Target> {
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

fn find_project(ctx: &Context, external_id: &str) -> Result<Project> {
    let path = format!(
        "/projects/external_id/{}",
        segment("external_id", external_id)?
    );
    send(Request::get(url(ctx, &path)?))?.json()
}

fn project_url(ctx: &Context, id: &str) -> Result<String> {
    url(ctx, &format!("/projects/{}", segment("id", id)?))
}

fn get_project(ctx: &Context, target: ProjectRef) -> Result<Project> {
    match target.target()? {
        Target::Id(id) => send(Request::get(project_url(ctx, &id)?))?.json(),
        Target::External(external_id) => find_project(ctx, &external_id),
    }
}

/// Input of `set-project-status`: the status and exactly one of `id` and
/// `external_id`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SetStatus {
    /// The status to move to.
    status: Status,
    /// The PSA's id of the project.
    #[serde(default)]
    id: Option<String>,
    /// The caller's id of the project.
    #[serde(default)]
    external_id: Option<String>,
}

fn set_project_status(ctx: &Context, input: SetStatus) -> Result<Project> {
    let target = ProjectRef {
        id: input.id,
        external_id: input.external_id,
        output: None,
        input: None,
    };
    move_project(ctx, target, input.status)
}

/// Moves a project to `status`; moving it to the status it has changes nothing.
fn move_project(ctx: &Context, target: ProjectRef, status: Status) -> Result<Project> {
    let id = match target.target()? {
        Target::Id(id) => id,
        Target::External(external_id) => find_project(ctx, &external_id)?.id,
    };
    move_to(ctx, &id, status)
}

fn move_to(ctx: &Context, id: &str, status: Status) -> Result<Project> {
    send(Request::patch(project_url(ctx, id)?).json(&json!({ "status": status }))?)?.json()
}

/// A role as the PSA returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct PsaRole {
    /// The PSA's id, e.g. `2001`.
    id: String,
    /// The project's id.
    project_id: String,
    /// Name, e.g. `Lead engineer`.
    name: String,
    /// Skills asked for.
    skills: Vec<String>,
    /// Hours of work.
    hours: f64,
    /// First day, `YYYY-MM-DD`.
    start_date: Option<String>,
    /// Last day, `YYYY-MM-DD`.
    end_date: Option<String>,
    /// Rate billed per hour.
    bill_rate: Option<Money>,
    /// RFC 3339.
    created_at: String,
}

/// Input of `add-roles`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AddRoles {
    /// The PSA id of the project.
    project_id: String,
    /// The roles, canonical v1; each `id` must be unique.
    roles: Vec<Role>,
}

/// The roles created and how canonical role ids map to the PSA's.
#[derive(Debug, Serialize, JsonSchema)]
struct AddedRoles {
    /// The roles as the PSA created them, in input order.
    roles: Vec<PsaRole>,
    /// The PSA role id of each canonical role id.
    role_ids: BTreeMap<String, String>,
}

fn add_roles(ctx: &Context, input: AddRoles) -> Result<AddedRoles> {
    let path = format!(
        "/projects/{}/roles",
        segment("project_id", &input.project_id)?
    );
    let mut seen = std::collections::BTreeSet::new();
    for role in &input.roles {
        if role.id.trim().is_empty() || !seen.insert(role.id.as_str()) {
            return Err(Error::InvalidInput(format!(
                "each role needs its own non-empty `id`; `{}` is empty or given twice",
                role.id
            )));
        }
    }
    let mut added = AddedRoles {
        roles: Vec::with_capacity(input.roles.len()),
        role_ids: BTreeMap::new(),
    };
    for (index, role) in input.roles.iter().enumerate() {
        let body = json!({
            "name": role.name,
            "skills": role.skills,
            "hours": role.hours,
            "start_date": role.start_date,
            "end_date": role.end_date,
            "bill_rate": role.bill_rate,
        });
        let key = ctx
            .idempotency_key
            .as_ref()
            .map(|key| format!("{key}:role:{}", role.id));
        let created: PsaRole = create(Request::post(url(ctx, &path)?).json(&body)?, key)
            .map_err(|e| in_role(e, index, &role.id))?
            .json()?;
        added.role_ids.insert(role.id.clone(), created.id.clone());
        added.roles.push(created);
    }
    Ok(added)
}

/// Says which role of the input an error is about.
fn in_role(error: Error, index: usize, id: &str) -> Error {
    let prefix = |m: String| format!("roles[{index}] (`{id}`): {m}");
    match error {
        Error::InvalidInput(m) => Error::InvalidInput(prefix(m)),
        Error::Conflict(m) => Error::Conflict(prefix(m)),
        Error::NotFound(m) => Error::NotFound(prefix(m)),
        other => other,
    }
}

/// A page of a PSA list.
#[derive(Debug, Deserialize)]
struct PsaPage<T> {
    results: Vec<T>,
    meta: PageMeta,
}

#[derive(Debug, Deserialize)]
struct PageMeta {
    count: u64,
    page_count: u64,
    page_number: u64,
}

impl PageMeta {
    fn next_page(&self) -> Option<u64> {
        (self.page_number < self.page_count).then_some(self.page_number + 1)
    }
}

/// Input of `list-roles`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListRoles {
    /// The PSA id of the project.
    project_id: String,
}

/// Every role of a project.
#[derive(Debug, Serialize, JsonSchema)]
struct Roles {
    /// In creation order.
    roles: Vec<PsaRole>,
}

fn list_roles(ctx: &Context, input: ListRoles) -> Result<Roles> {
    let path = format!(
        "/projects/{}/roles",
        segment("project_id", &input.project_id)?
    );
    let mut roles = Vec::new();
    let mut page = 1;
    loop {
        let url = url(ctx, &format!("{path}?page={page}&per_page={MAX_PAGE_SIZE}"))?;
        let answer: PsaPage<PsaRole> = send(Request::get(url))?.json()?;
        roles.extend(answer.results);
        match answer.meta.next_page() {
            Some(next) => page = next,
            None => return Ok(Roles { roles }),
        }
    }
}

/// A person as the PSA returns it.
#[derive(Debug, Deserialize)]
struct Person {
    id: String,
    name: String,
    #[serde(default)]
    skills: Vec<String>,
    available_hours: f64,
    cost_rate: Money,
}

impl Person {
    /// The canonical v1 resource: skills as lower-case tags, the PSA id as
    /// `id` and under `external_ids.psa`.
    fn into_resource(self) -> Resource {
        Resource {
            external_ids: BTreeMap::from([("psa".to_owned(), self.id.clone())]),
            id: self.id,
            name: self.name,
            skills: self
                .skills
                .iter()
                .map(|s| s.trim().to_lowercase())
                .collect(),
            available_hours: self.available_hours,
            cost_rate: self.cost_rate,
        }
    }
}

/// Input of `list-people`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListPeople {
    /// Only people with this skill (case does not matter).
    #[serde(default)]
    skill: Option<String>,
    /// The page, from 1; 1 when absent.
    #[serde(default)]
    page: Option<u32>,
    /// People per page, 1 to 200; the connection's `page_size` when absent.
    #[serde(default)]
    per_page: Option<u32>,
}

/// One page of people.
#[derive(Debug, Serialize, JsonSchema)]
struct People {
    /// The people of this page, as canonical v1 resources.
    people: Vec<Resource>,
    /// This page's number.
    page: u64,
    /// The next page's number; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page: Option<u64>,
    /// How many people match, on every page.
    total: u64,
}

fn people_page(ctx: &Context, input: &ListPeople) -> Result<People> {
    let (page, per_page) = rest::paging(
        ctx,
        input.page,
        input.per_page,
        "per_page",
        (DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
    )?;
    let mut query = format!("/people?page={page}&per_page={per_page}");
    if let Some(skill) = &input.skill {
        query.push_str(&format!("&skill={}", encode_component(skill.trim())));
    }
    let answer: PsaPage<Person> = send(Request::get(url(ctx, &query)?))?.json()?;
    Ok(People {
        next_page: answer.meta.next_page(),
        page: answer.meta.page_number,
        total: answer.meta.count,
        people: answer
            .results
            .into_iter()
            .map(Person::into_resource)
            .collect(),
    })
}

fn list_people(ctx: &Context, input: ListPeople) -> Result<People> {
    people_page(ctx, &input)
}

fn read_people(ctx: &Context, cursor: Option<String>) -> Result<Page> {
    let page = rest::page_cursor(PEOPLE, cursor.as_deref())?;
    let answer = people_page(
        ctx,
        &ListPeople {
            page: Some(page),
            ..ListPeople::default()
        },
    )?;
    let next = answer.next_page.map(|n| n.to_string());
    let done = next.is_none();
    Page::from_records(&answer.people, next, done)
}

/// What `GET /time_entries/approved` answers.
#[derive(Debug, Deserialize)]
struct ApprovedPage {
    results: Vec<Value>,
    next_cursor: String,
    has_more: bool,
}

fn read_approved_time(ctx: &Context, cursor: Option<String>) -> Result<Page> {
    let limit = rest::page_size(ctx, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let mut query = format!("/time_entries/approved?limit={limit}");
    if let Some(since) = &cursor {
        query.push_str(&format!("&since={}", encode_component(since)));
    }
    let answer: ApprovedPage = send(Request::get(url(ctx, &query)?))?.json()?;
    Page::from_records(&answer.results, Some(answer.next_cursor), !answer.has_more)
}

/// An assignment as the PSA returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Assignment {
    /// The PSA's id, e.g. `4001`.
    id: String,
    /// The project's id.
    project_id: String,
    /// The role's id.
    role_id: String,
    /// The person's id.
    person_id: String,
    /// Hours assigned.
    hours: f64,
    /// RFC 3339.
    created_at: String,
}

/// Input of `create-assignment`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateAssignment {
    /// The PSA id of the project.
    project_id: String,
    /// The PSA id of the role (see `add-roles`' `role_ids`).
    role_id: String,
    /// The PSA id of the person (a resource's `id`).
    person_id: String,
    /// Hours; the role's hours when absent.
    #[serde(default)]
    hours: Option<f64>,
}

fn create_assignment(ctx: &Context, input: CreateAssignment) -> Result<Assignment> {
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
fn post_assignment(
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
struct DeleteAssignment {
    /// The PSA id of the assignment.
    #[serde(default)]
    id: Option<String>,
    /// As a compensation: the assignment `create-assignment` returned.
    #[serde(default)]
    output: Option<Identified>,
    /// As a compensation: the input of that step (not used).
    #[serde(default)]
    #[allow(dead_code)]
    input: Option<Value>,
}

/// The outcome of `delete-assignment`.
#[derive(Debug, Serialize, JsonSchema)]
struct Deleted {
    /// The assignment's id.
    id: String,
    /// False when it was already gone (a retried or repeated delete).
    deleted: bool,
}

fn delete_assignment(ctx: &Context, input: DeleteAssignment) -> Result<Deleted> {
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
struct NewAssignment {
    /// The PSA id of the role.
    role_id: String,
    /// The PSA id of the person.
    person_id: String,
    /// Hours; the role's hours when absent.
    #[serde(default)]
    hours: Option<f64>,
}

/// Input of `create-assignments`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateAssignments {
    /// The PSA id of the project.
    project_id: String,
    /// The assignments, in order.
    assignments: Vec<NewAssignment>,
}

/// What `create-assignments` made.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Assignments {
    /// The assignments as the PSA created them, in input order.
    assignments: Vec<Assignment>,
}

/// Creates each assignment in order. With an idempotency key, the n-th is
/// sent with `<key>:<n>`, so a retried step (or a replayed run) gets back
/// the assignments the first attempt made instead of making new ones, however
/// far that attempt got.
fn create_assignments(ctx: &Context, input: CreateAssignments) -> Result<Assignments> {
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
struct DeleteAssignments {
    /// The PSA ids of the assignments.
    #[serde(default)]
    ids: Option<Vec<String>>,
    /// As a compensation: what `create-assignments` returned.
    #[serde(default)]
    output: Option<Assignments>,
    /// As a compensation: the input of that step (not used).
    #[serde(default)]
    #[allow(dead_code)]
    input: Option<Value>,
}

/// What `delete-assignments` did.
#[derive(Debug, Serialize, JsonSchema)]
struct DeletedAll {
    /// Each assignment and whether it was still there to delete.
    deleted: Vec<Deleted>,
}

fn delete_assignments(ctx: &Context, input: DeleteAssignments) -> Result<DeletedAll> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: Value) -> Response {
        Response::new(status, headers, body.to_string())
    }

    fn psa_error(kind: &str, message: &str, field: Option<&str>) -> Value {
        let mut error = json!({"type": kind, "message": message});
        if let Some(field) = field {
            error["field"] = json!(field);
        }
        json!({ "errors": [error] })
    }

    #[test]
    fn statuses_map_to_error_cases_and_name_the_field() {
        let invalid = failure(response(
            422,
            &[],
            psa_error(
                "validation",
                "budget.currency must be an ISO 4217 code",
                Some("budget.currency"),
            ),
        ));
        assert!(
            matches!(&invalid, Error::InvalidInput(m) if m.contains("`budget.currency`")),
            "{invalid:?}"
        );
        let conflict = failure(response(
            409,
            &[],
            psa_error(
                "conflict",
                "person 3001 already fills role 2001",
                Some("person_id"),
            ),
        ));
        assert!(
            matches!(&conflict, Error::Conflict(m) if m.contains("`person_id`")),
            "{conflict:?}"
        );
        let cases = [
            (400, "invalid_request", "InvalidInput"),
            (401, "oauth", "Unauthorized"),
            (404, "not_found", "NotFound"),
            (500, "system", "Unavailable"),
        ];
        for (status, kind, case) in cases {
            let error = failure(response(status, &[], psa_error(kind, "nope", None)));
            assert!(
                format!("{error:?}").starts_with(case),
                "{status}: {error:?}"
            );
            assert!(error.to_string().contains("nope"), "{error}");
        }
        assert_eq!(
            failure(response(
                429,
                &[("Retry-After", "7")],
                psa_error("rate_limit", "slow down", None)
            )),
            Error::RateLimited {
                retry_after_ms: 7000
            }
        );
        let html = Response::new(502, &[], "<html>");
        assert!(matches!(failure(html), Error::Unavailable(_)));
    }

    #[test]
    fn a_project_is_named_by_exactly_one_reference() {
        let target = |value: Value| {
            serde_json::from_value::<ProjectRef>(value)
                .unwrap()
                .target()
        };
        assert!(matches!(target(json!({"id": "1001"})), Ok(Target::Id(id)) if id == "1001"));
        assert!(
            matches!(target(json!({"external_id": "crm-1"})), Ok(Target::External(id)) if id == "crm-1")
        );
        // The `{input, output}` a compensation of upsert-project is fed.
        let fed = json!({"input": {"external_id": "crm-1", "name": "X"},
                         "output": {"id": "1002", "created": true, "name": "X"}});
        assert!(matches!(target(fed), Ok(Target::Id(id)) if id == "1002"));
        for bad in [json!({}), json!({"id": "1", "external_id": "x"})] {
            assert!(
                matches!(target(bad), Err(Error::InvalidInput(m)) if m.contains("exactly one"))
            );
        }
        assert!(serde_json::from_value::<ProjectRef>(json!({"idd": "1"})).is_err());
    }

    #[test]
    fn people_become_canonical_resources_with_lower_case_skills() {
        let person: Person = serde_json::from_value(json!({
            "id": "3001", "name": "Ada Lovelace", "email": "ada@example.com",
            "skills": ["Rust", " NetSuite "], "available_hours": 120.0,
            "cost_rate": {"amount": 85.0, "currency": "USD"}
        }))
        .unwrap();
        let resource = serde_json::to_value(person.into_resource()).unwrap();
        assert_eq!(
            resource,
            json!({"id": "3001", "name": "Ada Lovelace", "skills": ["rust", "netsuite"],
                   "available_hours": 120.0, "cost_rate": {"amount": 85.0, "currency": "USD"},
                   "external_ids": {"psa": "3001"}})
        );
    }

    #[test]
    fn roles_are_refused_without_unique_ids_before_any_request() {
        let input: AddRoles = serde_json::from_value(json!({
            "project_id": "1001",
            "roles": [{"id": "lead", "name": "Lead", "hours": 10.0},
                      {"id": "lead", "name": "Second lead", "hours": 5.0}]
        }))
        .unwrap();
        assert!(
            matches!(add_roles(&Context::default(), input), Err(Error::InvalidInput(m)) if m.contains("`lead`"))
        );
    }

    #[test]
    fn errors_of_a_role_say_which_role() {
        let error = in_role(
            Error::InvalidInput("`hours`: must be more than 0".into()),
            1,
            "qa",
        );
        assert_eq!(
            error,
            Error::InvalidInput("roles[1] (`qa`): `hours`: must be more than 0".into())
        );
        assert_eq!(
            in_role(Error::RateLimited { retry_after_ms: 5 }, 0, "x"),
            Error::RateLimited { retry_after_ms: 5 }
        );
    }

    #[test]
    fn pages_know_the_next_one() {
        let meta = |page_number, page_count| PageMeta {
            count: 5,
            page_count,
            page_number,
        };
        assert_eq!(meta(1, 3).next_page(), Some(2));
        assert_eq!(meta(3, 3).next_page(), None);
        assert_eq!(meta(1, 0).next_page(), None);
    }

    #[test]
    fn operations_match_the_manifest() {
        let manifest = include_str!("../plugin.toml");
        let names: Vec<String> = Psa::operations()
            .names()
            .map(|n| format!("\"{n}\""))
            .collect();
        assert!(
            manifest.contains(&format!("operations = [{}]", names.join(", "))),
            "{names:?}"
        );
    }
}
