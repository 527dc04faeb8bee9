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

mod api;
mod assignments;
mod people;
mod projects;
mod roles;
mod time_entries;

#[cfg(test)]
mod tests;

use junction_sdk::http::Request;
use junction_sdk::{Connector, Context, JsonSchema, Operation, Operations, Page, Result, rest};

use crate::api::{send, url};
use crate::assignments::{
    create_assignment, create_assignments, delete_assignment, delete_assignments,
};
use crate::people::{list_people, read_people};
use crate::projects::{
    ProjectRef, Status, get_project, move_project, set_project_status, upsert_project,
};
use crate::roles::{add_roles, list_roles};
use crate::time_entries::read_approved_time;

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
