//! Roles: `add-roles` and `list-roles`.

use std::collections::BTreeMap;

use junction_sdk::canonical::{Money, Role};
use junction_sdk::http::Request;
use junction_sdk::{Context, Error, JsonSchema, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::MAX_PAGE_SIZE;
use crate::api::{PsaPage, create, segment, send, url};

/// A role as the PSA returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct PsaRole {
    /// The PSA's id, e.g. `2001`.
    pub(crate) id: String,
    /// The project's id.
    pub(crate) project_id: String,
    /// Name, e.g. `Lead engineer`.
    pub(crate) name: String,
    /// Skills asked for.
    pub(crate) skills: Vec<String>,
    /// Hours of work.
    pub(crate) hours: f64,
    /// First day, `YYYY-MM-DD`.
    pub(crate) start_date: Option<String>,
    /// Last day, `YYYY-MM-DD`.
    pub(crate) end_date: Option<String>,
    /// Rate billed per hour.
    pub(crate) bill_rate: Option<Money>,
    /// RFC 3339.
    pub(crate) created_at: String,
}

/// Input of `add-roles`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddRoles {
    /// The PSA id of the project.
    pub(crate) project_id: String,
    /// The roles, canonical v1; each `id` must be unique.
    pub(crate) roles: Vec<Role>,
}

/// The roles created and how canonical role ids map to the PSA's.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct AddedRoles {
    /// The roles as the PSA created them, in input order.
    pub(crate) roles: Vec<PsaRole>,
    /// The PSA role id of each canonical role id.
    pub(crate) role_ids: BTreeMap<String, String>,
}

pub(crate) fn add_roles(ctx: &Context, input: AddRoles) -> Result<AddedRoles> {
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
pub(crate) fn in_role(error: Error, index: usize, id: &str) -> Error {
    let prefix = |m: String| format!("roles[{index}] (`{id}`): {m}");
    match error {
        Error::InvalidInput(m) => Error::InvalidInput(prefix(m)),
        Error::Conflict(m) => Error::Conflict(prefix(m)),
        Error::NotFound(m) => Error::NotFound(prefix(m)),
        other => other,
    }
}

/// Input of `list-roles`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListRoles {
    /// The PSA id of the project.
    pub(crate) project_id: String,
}

/// Every role of a project.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Roles {
    /// In creation order.
    pub(crate) roles: Vec<PsaRole>,
}

pub(crate) fn list_roles(ctx: &Context, input: ListRoles) -> Result<Roles> {
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
