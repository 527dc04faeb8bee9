//! People as canonical v1 resources: `list-people` and the `people` stream.

use std::collections::BTreeMap;

use junction_sdk::canonical::{Money, Resource};
use junction_sdk::http::{Request, encode_component};
use junction_sdk::{Context, JsonSchema, Page, Result, rest};
use serde::{Deserialize, Serialize};

use crate::api::{PsaPage, send, url};
use crate::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PEOPLE};

/// A person as the PSA returns it.
#[derive(Debug, Deserialize)]
pub(crate) struct Person {
    pub(crate) id: String,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) skills: Vec<String>,
    pub(crate) available_hours: f64,
    pub(crate) cost_rate: Money,
}

impl Person {
    /// The canonical v1 resource: skills as lower-case tags, the PSA id as
    /// `id` and under `external_ids.psa`.
    pub(crate) fn into_resource(self) -> Resource {
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
pub(crate) struct ListPeople {
    /// Only people with this skill (case does not matter).
    #[serde(default)]
    pub(crate) skill: Option<String>,
    /// The page, from 1; 1 when absent.
    #[serde(default)]
    pub(crate) page: Option<u32>,
    /// People per page, 1 to 200; the connection's `page_size` when absent.
    #[serde(default)]
    pub(crate) per_page: Option<u32>,
}

/// One page of people.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct People {
    /// The people of this page, as canonical v1 resources.
    pub(crate) people: Vec<Resource>,
    /// This page's number.
    pub(crate) page: u64,
    /// The next page's number; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_page: Option<u64>,
    /// How many people match, on every page.
    pub(crate) total: u64,
}

pub(crate) fn people_page(ctx: &Context, input: &ListPeople) -> Result<People> {
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

pub(crate) fn list_people(ctx: &Context, input: ListPeople) -> Result<People> {
    people_page(ctx, &input)
}

pub(crate) fn read_people(ctx: &Context, cursor: Option<String>) -> Result<Page> {
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
