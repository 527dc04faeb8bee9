//! Canonical models ("canonical v1"): the shapes transforms map each system's
//! records to and from, so a flow step never depends on two vendors at once.
//!
//! Optional fields are `None` when the source system does not know the value;
//! they serialize as `null` and may be absent on input.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of these models, stamped where a consumer needs to check it.
pub const VERSION: &str = "canonical v1";

/// An amount of money.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Money {
    /// The amount in `currency` units (not cents).
    pub amount: f64,
    /// ISO 4217 code, upper case, e.g. `USD`.
    pub currency: String,
}

/// Where a project stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProjectStatus {
    /// Sold or agreed, not started.
    Planned,
    /// Work is under way.
    Active,
    /// Paused.
    OnHold,
    /// Delivered.
    Completed,
    /// Stopped for good before completion.
    Cancelled,
}

/// A delivery project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Project {
    /// Human name, e.g. `Acme rollout`.
    pub name: String,
    /// Short key in the Jira style: 2–10 upper-case ASCII letters or digits,
    /// starting with a letter, e.g. `ACME`.
    pub key: String,
    /// Name of the customer the project is delivered to, when known.
    #[serde(default)]
    pub customer: Option<String>,
    /// Agreed budget, when known.
    #[serde(default)]
    pub budget: Option<Money>,
    /// Planned start, `YYYY-MM-DD`, when known.
    #[serde(default)]
    pub start_date: Option<String>,
    /// Where the project stands.
    pub status: ProjectStatus,
    /// Ids of this project in other systems, by system name, e.g. `{"hubspot": "123"}`.
    #[serde(default)]
    pub external_ids: BTreeMap<String, String>,
}

/// A customer (an account in a CRM, a customer record in an ERP).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Customer {
    /// Legal or display name.
    pub name: String,
    /// Web domain, e.g. `acme.com`, when known.
    #[serde(default)]
    pub domain: Option<String>,
    /// Billing e-mail address, when known.
    #[serde(default)]
    pub email: Option<String>,
    /// ISO 3166-1 alpha-2 country code, when known.
    #[serde(default)]
    pub country: Option<String>,
    /// ISO 4217 currency the customer is billed in, when known.
    #[serde(default)]
    pub currency: Option<String>,
    /// Ids of this customer in other systems, by system name.
    #[serde(default)]
    pub external_ids: BTreeMap<String, String>,
}

/// A person at a customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Contact {
    /// Full name.
    pub name: String,
    /// E-mail address, when known.
    #[serde(default)]
    pub email: Option<String>,
    /// Phone number as the source wrote it, when known.
    #[serde(default)]
    pub phone: Option<String>,
    /// Job title, when known.
    #[serde(default)]
    pub title: Option<String>,
    /// Name of the customer the contact works for, when known.
    #[serde(default)]
    pub customer: Option<String>,
    /// Ids of this contact in other systems, by system name.
    #[serde(default)]
    pub external_ids: BTreeMap<String, String>,
}

/// Where a sales opportunity stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpportunityStage {
    /// Being worked.
    Open,
    /// Won: the moment delivery starts.
    ClosedWon,
    /// Lost.
    ClosedLost,
}

/// A sales opportunity (a Salesforce opportunity, a HubSpot deal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Opportunity {
    /// Name, e.g. `Acme rollout`.
    pub name: String,
    /// The customer it is sold to.
    pub customer: Customer,
    /// Its value, when known.
    #[serde(default)]
    pub amount: Option<Money>,
    /// Where it stands.
    pub stage: OpportunityStage,
    /// Expected or actual close date, `YYYY-MM-DD`, when known.
    #[serde(default)]
    pub close_date: Option<String>,
    /// The roles the deal was sold with, when the CRM knows them.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Ids of this opportunity in other systems, by system name.
    #[serde(default)]
    pub external_ids: BTreeMap<String, String>,
}

/// A won deal as delivery sees it: the customer it was sold to and the
/// project that delivers it. What a CRM transform hands to the ERP, PSA and
/// project-tool steps of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Engagement {
    /// The customer.
    pub customer: Customer,
    /// The project; its `customer` is the customer's name.
    pub project: Project,
}

/// An open position on a project: who is needed, for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Role {
    /// Stable id within the project, e.g. `lead-engineer`.
    pub id: String,
    /// Human name, e.g. `Lead engineer`.
    pub name: String,
    /// Skills asked for, lower-case tags, e.g. `["rust", "netsuite"]`.
    #[serde(default)]
    pub skills: Vec<String>,
    /// Hours of work.
    pub hours: f64,
    /// First day, `YYYY-MM-DD`, when known.
    #[serde(default)]
    pub start_date: Option<String>,
    /// Last day, `YYYY-MM-DD`, when known.
    #[serde(default)]
    pub end_date: Option<String>,
    /// Rate billed to the customer per hour, when known.
    #[serde(default)]
    pub bill_rate: Option<Money>,
}

/// A person who can be staffed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Resource {
    /// Stable id, e.g. an employee number.
    pub id: String,
    /// Full name.
    pub name: String,
    /// Skills, lower-case tags.
    #[serde(default)]
    pub skills: Vec<String>,
    /// Hours free in the period being planned.
    pub available_hours: f64,
    /// Internal cost per hour.
    pub cost_rate: Money,
    /// Ids of this person in other systems, by system name.
    #[serde(default)]
    pub external_ids: BTreeMap<String, String>,
}

/// A resource staffed on a role of a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Assignment {
    /// Key of the project.
    pub project_key: String,
    /// Id of the role.
    pub role_id: String,
    /// Id of the resource.
    pub resource_id: String,
    /// Hours assigned.
    pub hours: f64,
}

/// Where a time entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Entered, not yet submitted.
    Draft,
    /// Waiting for approval.
    Submitted,
    /// Approved: billable.
    Approved,
    /// Sent back.
    Rejected,
}

/// Hours a resource worked on a project on one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimeEntry {
    /// Id in the system it comes from.
    pub id: String,
    /// Key of the project.
    pub project_key: String,
    /// Id of the resource.
    pub resource_id: String,
    /// The day, `YYYY-MM-DD`.
    pub date: String,
    /// Hours worked.
    pub hours: f64,
    /// Whether the hours are billable.
    #[serde(default = "yes")]
    pub billable: bool,
    /// Where the entry stands.
    pub status: ApprovalStatus,
    /// What was done, when given.
    #[serde(default)]
    pub note: Option<String>,
}

fn yes() -> bool {
    true
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InvoiceLine {
    /// What is billed, e.g. `Lead engineer, 2026-11-02 to 2026-11-06`.
    pub description: String,
    /// Units (hours for time).
    pub quantity: f64,
    /// Price per unit.
    pub unit_price: Money,
    /// Ids of the time entries the line bills, when it bills time.
    #[serde(default)]
    pub time_entry_ids: Vec<String>,
}

/// An invoice to a customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Invoice {
    /// Name of the customer billed.
    pub customer: String,
    /// Key of the project billed, when it bills one project.
    #[serde(default)]
    pub project_key: Option<String>,
    /// Invoice date, `YYYY-MM-DD`.
    pub date: String,
    /// Lines.
    pub lines: Vec<InvoiceLine>,
    /// ISO 4217 currency of every line.
    pub currency: String,
    /// Ids of this invoice in other systems, by system name.
    #[serde(default)]
    pub external_ids: BTreeMap<String, String>,
}

/// A billing or delivery milestone of a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Milestone {
    /// Key of the project.
    pub project_key: String,
    /// Name, e.g. `Go-live`.
    pub name: String,
    /// Due date, `YYYY-MM-DD`.
    pub due_date: String,
    /// Amount billed when it is reached, for fixed-fee work.
    #[serde(default)]
    pub amount: Option<Money>,
    /// Whether it has been reached.
    #[serde(default)]
    pub done: bool,
}

/// The JSON Schema of every canonical v1 model, by file name, as committed
/// under `schemas/canonical/v1/` at the repository root.
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    fn schema<T: JsonSchema>() -> serde_json::Value {
        schemars::schema_for!(T).to_value()
    }
    vec![
        ("customer.schema.json", schema::<Customer>()),
        ("contact.schema.json", schema::<Contact>()),
        ("opportunity.schema.json", schema::<Opportunity>()),
        ("engagement.schema.json", schema::<Engagement>()),
        ("project.schema.json", schema::<Project>()),
        ("role.schema.json", schema::<Role>()),
        ("resource.schema.json", schema::<Resource>()),
        ("assignment.schema.json", schema::<Assignment>()),
        ("time-entry.schema.json", schema::<TimeEntry>()),
        ("invoice.schema.json", schema::<Invoice>()),
        ("milestone.schema.json", schema::<Milestone>()),
    ]
}

/// True when `key` is a valid Jira-style project key: 2–10 upper-case ASCII
/// letters or digits, starting with a letter.
pub fn is_project_key(key: &str) -> bool {
    (2..=10).contains(&key.len())
        && key.starts_with(|c: char| c.is_ascii_uppercase())
        && key
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// A project key derived from a name: its ASCII letters, upper-cased, at
/// most 10 ("Acme rollout" -> `ACMEROLLOU`); `None` when the name has fewer
/// than 2 ASCII letters. Every key it returns passes [`is_project_key`].
pub fn project_key(name: &str) -> Option<String> {
    let key: String = name
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_uppercase())
        .take(10)
        .collect();
    (key.len() >= 2).then_some(key)
}

/// `YYYY-MM-DD` from an RFC 3339 timestamp or a date (`2026-11-20`,
/// `2026-11-20T00:00:00.000Z`); `None` for anything else.
pub fn date_part(value: &str) -> Option<String> {
    let date = value.get(..10)?;
    let bytes = date.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    let shaped =
        digits(0..4) && bytes[4] == b'-' && digits(5..7) && bytes[7] == b'-' && digits(8..10);
    let rest_ok = value.len() == 10 || value.as_bytes()[10] == b'T';
    (shaped && rest_ok).then(|| date.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn project_round_trips_with_snake_case_status() {
        let project = Project {
            name: "Acme rollout".into(),
            key: "ACME".into(),
            customer: Some("Acme Corp".into()),
            budget: Some(Money {
                amount: 120000.0,
                currency: "USD".into(),
            }),
            start_date: Some("2026-11-20".into()),
            status: ProjectStatus::OnHold,
            external_ids: BTreeMap::from([("hubspot".into(), "123".into())]),
        };
        let value = serde_json::to_value(&project).expect("serializes");
        assert_eq!(value["status"], "on_hold");
        assert_eq!(
            value["budget"],
            json!({"amount": 120000.0, "currency": "USD"})
        );
        let back: Project = serde_json::from_value(value).expect("deserializes");
        assert_eq!(back, project);
    }

    #[test]
    fn optional_fields_may_be_absent() {
        let project: Project =
            serde_json::from_value(json!({"name": "X", "key": "XY", "status": "planned"}))
                .expect("deserializes");
        assert_eq!(project.customer, None);
        assert!(project.external_ids.is_empty());
        let customer: Customer =
            serde_json::from_value(json!({"name": "Acme"})).expect("deserializes");
        assert_eq!(customer.domain, None);
    }

    /// The committed schemas are what the types say. To update them after
    /// changing a model: `JUNCTION_BLESS=1 cargo test -p junction-sdk canonical`.
    #[test]
    fn committed_schemas_match_the_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/canonical/v1");
        let bless = std::env::var_os("JUNCTION_BLESS").is_some();
        for (file, schema) in schemas() {
            let text = format!("{}\n", serde_json::to_string_pretty(&schema).expect("json"));
            let path = dir.join(file);
            if bless {
                std::fs::create_dir_all(&dir).expect("schema dir");
                std::fs::write(&path, &text).expect("write schema");
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == text,
                "{file} is out of date; run JUNCTION_BLESS=1 cargo test -p junction-sdk canonical"
            );
        }
    }

    #[test]
    fn time_entries_are_billable_unless_said_otherwise() {
        let entry: TimeEntry = serde_json::from_value(json!({
            "id": "t1", "project_key": "ACME", "resource_id": "r1",
            "date": "2026-11-02", "hours": 7.5, "status": "approved"
        }))
        .expect("deserializes");
        assert!(entry.billable);
        assert_eq!(entry.status, ApprovalStatus::Approved);
        let stage = serde_json::to_value(OpportunityStage::ClosedWon).expect("serializes");
        assert_eq!(stage, "closed_won");
    }

    #[test]
    fn project_keys() {
        assert!(is_project_key("ACME"));
        assert!(is_project_key("A1"));
        assert!(!is_project_key("A"));
        assert!(!is_project_key("1AB"));
        assert!(!is_project_key("acme"));
        assert!(!is_project_key("ABCDEFGHIJK"));
    }

    #[test]
    fn project_keys_keep_ascii_letters_only() {
        assert_eq!(project_key("Acme rollout").as_deref(), Some("ACMEROLLOU"));
        assert_eq!(project_key("Q3 — Müller AG").as_deref(), Some("QMLLERAG"));
        assert_eq!(project_key("X 1"), None);
        assert!(project_key("Globex ERP migration").is_some_and(|k| is_project_key(&k)));
    }

    #[test]
    fn date_part_takes_dates_and_timestamps_only() {
        assert_eq!(date_part("2026-11-20").as_deref(), Some("2026-11-20"));
        assert_eq!(
            date_part("2026-11-20T09:30:00.000Z").as_deref(),
            Some("2026-11-20")
        );
        for bad in [
            "20 Nov 2026",
            "2026-11-2",
            "2026/11/20",
            "2026-11-20 09:30",
            "",
        ] {
            assert_eq!(date_part(bad), None, "{bad}");
        }
    }
}
