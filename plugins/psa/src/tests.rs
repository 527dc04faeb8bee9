use super::*;

use junction_sdk::http::Response;
use junction_sdk::{Context, Error};
use serde_json::{Value, json};

use crate::api::{PageMeta, failure};
use crate::people::Person;
use crate::projects::{ProjectRef, Target};
use crate::roles::{AddRoles, add_roles, in_role};

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
        assert!(matches!(target(bad), Err(Error::InvalidInput(m)) if m.contains("exactly one")));
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
