//! Maps a HubSpot CRM v3 deal to a canonical v1 [`Project`].
//!
//! Only closed-won deals become projects: any other `dealstage` yields no
//! output. The mapping:
//!
//! - `name`: `properties.dealname` (required).
//! - `key`: the ASCII letters of the deal name, upper-cased and concatenated,
//!   cut to 10 ("Acme rollout" → `ACMEROLLOU`). Other characters are dropped,
//!   so a name with fewer than 2 ASCII letters is invalid input.
//! - `budget`: `properties.amount` in `properties.deal_currency_code`
//!   (USD when absent); no budget when the amount is absent or empty.
//! - `start_date`: the date part of `properties.closedate`.
//! - `status`: `planned`; `external_ids`: `{"hubspot": <deal id>}`.

use std::collections::BTreeMap;

use junction_sdk::canonical::{Money, Project, ProjectStatus, date_part, project_key};
use junction_sdk::{Error, JsonSchema, Result, Transform};
use serde::Deserialize;

struct DealToProject;

impl Transform for DealToProject {
    type Input = Deal;
    type Output = Project;

    fn apply(deal: Deal) -> Result<Vec<Project>> {
        Ok(deal_to_project(deal)?.into_iter().collect())
    }
}

junction_sdk::export_transform!(DealToProject);

/// A HubSpot CRM v3 deal object.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Deal {
    /// HubSpot's deal id.
    pub id: String,
    /// Deal properties; HubSpot sends every value as a string.
    pub properties: Properties,
}

/// The deal properties this transform reads.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct Properties {
    /// Deal name.
    pub dealname: Option<String>,
    /// Amount as a decimal string, e.g. `"120000"`.
    pub amount: Option<String>,
    /// Close date, RFC 3339, e.g. `2026-11-20T00:00:00.000Z`.
    pub closedate: Option<String>,
    /// Pipeline stage id, e.g. `closedwon`.
    pub dealstage: Option<String>,
    /// ISO 4217 currency of the amount.
    pub deal_currency_code: Option<String>,
}

/// The project for a closed-won deal, `None` for any other stage.
pub fn deal_to_project(deal: Deal) -> Result<Option<Project>> {
    let p = deal.properties;
    if p.dealstage.as_deref() != Some("closedwon") {
        return Ok(None);
    }
    let name = p
        .dealname
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| Error::InvalidInput("`properties.dealname` is missing".into()))?;
    let key = project_key(&name).ok_or_else(|| {
        Error::InvalidInput(format!(
            "`properties.dealname` `{name}` has fewer than 2 ASCII letters to derive a project key from"
        ))
    })?;
    let budget = match p.amount.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(amount) => {
            let amount: f64 = amount
                .parse()
                .ok()
                .filter(|a: &f64| a.is_finite())
                .ok_or_else(|| {
                    Error::InvalidInput(format!("`properties.amount` `{amount}` is not a number"))
                })?;
            let currency = p
                .deal_currency_code
                .filter(|c| !c.trim().is_empty())
                .map_or_else(|| "USD".to_string(), |c| c.trim().to_ascii_uppercase());
            Some(Money { amount, currency })
        }
    };
    let start_date = match p.closedate.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(date) => Some(date_part(date).ok_or_else(|| {
            Error::InvalidInput(format!(
                "`properties.closedate` `{date}` is not an RFC 3339 date"
            ))
        })?),
    };
    Ok(Some(Project {
        name,
        key,
        customer: None,
        budget,
        start_date,
        status: ProjectStatus::Planned,
        external_ids: BTreeMap::from([("hubspot".to_string(), deal.id)]),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction_sdk::canonical::is_project_key;
    use serde_json::{Value, json};

    fn deal(properties: Value) -> Deal {
        serde_json::from_value(json!({
            "id": "123",
            "properties": properties,
            "createdAt": "2026-10-01T09:00:00.000Z",
            "updatedAt": "2026-11-20T10:00:00.000Z",
            "archived": false
        }))
        .unwrap()
    }

    fn closed_won() -> Value {
        json!({
            "dealname": "Acme rollout",
            "amount": "120000",
            "closedate": "2026-11-20T00:00:00.000Z",
            "dealstage": "closedwon",
            "pipeline": "default"
        })
    }

    #[test]
    fn closed_won_deal_becomes_a_planned_project() {
        let project = deal_to_project(deal(closed_won())).unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&project).unwrap(),
            json!({
                "name": "Acme rollout",
                "key": "ACMEROLLOU",
                "customer": null,
                "budget": {"amount": 120000.0, "currency": "USD"},
                "start_date": "2026-11-20",
                "status": "planned",
                "external_ids": {"hubspot": "123"}
            })
        );
        assert!(is_project_key(&project.key));
    }

    #[test]
    fn other_stages_yield_nothing() {
        let mut properties = closed_won();
        properties["dealstage"] = json!("appointmentscheduled");
        assert_eq!(deal_to_project(deal(properties)).unwrap(), None);
        let mut properties = closed_won();
        properties.as_object_mut().unwrap().remove("dealstage");
        assert_eq!(deal_to_project(deal(properties)).unwrap(), None);
    }

    #[test]
    fn currency_comes_from_the_deal_when_present() {
        let mut properties = closed_won();
        properties["deal_currency_code"] = json!("eur");
        let project = deal_to_project(deal(properties)).unwrap().unwrap();
        assert_eq!(project.budget.unwrap().currency, "EUR");
    }

    #[test]
    fn missing_amount_and_closedate_leave_fields_empty() {
        let mut properties = closed_won();
        properties["amount"] = json!("");
        properties.as_object_mut().unwrap().remove("closedate");
        let project = deal_to_project(deal(properties)).unwrap().unwrap();
        assert_eq!(project.budget, None);
        assert_eq!(project.start_date, None);
    }

    #[test]
    fn missing_dealname_is_invalid_input_naming_the_field() {
        let mut properties = closed_won();
        properties.as_object_mut().unwrap().remove("dealname");
        let Err(Error::InvalidInput(message)) = deal_to_project(deal(properties)) else {
            panic!("expected invalid input");
        };
        assert!(message.contains("properties.dealname"), "{message}");
    }

    #[test]
    fn bad_values_are_invalid_input_naming_the_field() {
        for (field, value) in [
            ("amount", "lots"),
            ("closedate", "20 Nov 2026"),
            ("dealname", "42"),
        ] {
            let mut properties = closed_won();
            properties[field] = json!(value);
            let Err(Error::InvalidInput(message)) = deal_to_project(deal(properties)) else {
                panic!("expected invalid input for {field}");
            };
            assert!(
                message.contains(&format!("properties.{field}")),
                "{message}"
            );
        }
    }

    #[test]
    fn apply_runs_on_json_text() {
        let input = json!({"id": "9", "properties": closed_won()}).to_string();
        let outputs = junction_sdk::apply_json::<DealToProject>(&input).unwrap();
        assert_eq!(outputs.len(), 1);
        let project: Value = serde_json::from_str(&outputs[0]).unwrap();
        assert_eq!(project["external_ids"]["hubspot"], "9");
    }
}
