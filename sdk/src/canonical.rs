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

/// True when `key` is a valid Jira-style project key: 2–10 upper-case ASCII
/// letters or digits, starting with a letter.
pub fn is_project_key(key: &str) -> bool {
    (2..=10).contains(&key.len())
        && key.starts_with(|c: char| c.is_ascii_uppercase())
        && key
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
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

    #[test]
    fn project_keys() {
        assert!(is_project_key("ACME"));
        assert!(is_project_key("A1"));
        assert!(!is_project_key("A"));
        assert!(!is_project_key("1AB"));
        assert!(!is_project_key("acme"));
        assert!(!is_project_key("ABCDEFGHIJK"));
    }
}
