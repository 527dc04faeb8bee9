//! Maps a canonical v1 [`Engagement`] to the two NetSuite records that
//! deliver it: a customer and a job (NetSuite's project record), each with
//! the external id the NetSuite connector upserts it by
//! (`PUT /record/v1/{type}/eid:{externalId}`), so a retried or replayed
//! flow step updates the record it made instead of making a second one.
//!
//! Output, in this order:
//!
//! 1. `{"record_type": "customer", "external_id", "fields": {"companyName", "url"?, "email"?}}`
//! 2. `{"record_type": "job", "external_id", "fields": {"companyName", "startDate"?}}`; the job's
//!    `parent` (the customer's internal id) is only known once the customer
//!    is upserted, so the flow adds it.
//!
//! External ids are `<system>-<id>` from the record's `external_ids`,
//! preferring the CRM (`salesforce`, then `hubspot`, then the first by
//! name): the same deal always maps to the same NetSuite records. A record
//! without any external id is invalid input.

use std::collections::BTreeMap;

use junction_sdk::canonical::Engagement;
use junction_sdk::{Error, JsonSchema, Result, Transform};
use serde::Serialize;
use serde_json::{Map, Value, json};

struct ToNetsuite;

impl Transform for ToNetsuite {
    type Input = Engagement;
    type Output = NetsuiteRecord;

    fn apply(engagement: Engagement) -> Result<Vec<NetsuiteRecord>> {
        records(&engagement)
    }
}

junction_sdk::export_transform!(ToNetsuite);

/// A NetSuite record to upsert by external id.
#[derive(Debug, PartialEq, Serialize, JsonSchema)]
pub struct NetsuiteRecord {
    /// `customer` or `job`.
    pub record_type: &'static str,
    /// The external id to upsert by.
    pub external_id: String,
    /// The record's fields, NetSuite names.
    pub fields: Value,
}

/// Preference order of the systems an external id is taken from.
const PREFERRED: [&str; 2] = ["salesforce", "hubspot"];

fn external_id(ids: &BTreeMap<String, String>, field: &str) -> Result<String> {
    PREFERRED
        .iter()
        .find_map(|system| ids.get_key_value(*system))
        .or_else(|| ids.iter().next())
        .filter(|(_, id)| !id.trim().is_empty())
        .map(|(system, id)| format!("{system}-{}", id.trim()))
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "`{field}` is empty: a NetSuite upsert needs an external id"
            ))
        })
}

/// The customer and job records of `engagement`.
pub fn records(engagement: &Engagement) -> Result<Vec<NetsuiteRecord>> {
    let customer = &engagement.customer;
    let project = &engagement.project;
    let mut customer_body = Map::new();
    customer_body.insert("companyName".into(), json!(customer.name));
    if let Some(domain) = &customer.domain {
        customer_body.insert("url".into(), json!(format!("https://{domain}")));
    }
    if let Some(email) = &customer.email {
        customer_body.insert("email".into(), json!(email));
    }
    let mut job_body = Map::new();
    job_body.insert("companyName".into(), json!(project.name));
    if let Some(start) = &project.start_date {
        job_body.insert("startDate".into(), json!(start));
    }
    Ok(vec![
        NetsuiteRecord {
            record_type: "customer",
            external_id: external_id(&customer.external_ids, "customer.external_ids")?,
            fields: Value::Object(customer_body),
        },
        NetsuiteRecord {
            record_type: "job",
            external_id: external_id(&project.external_ids, "project.external_ids")?,
            fields: Value::Object(job_body),
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn engagement(customer_ids: Value, project_ids: Value) -> Engagement {
        serde_json::from_value(json!({
            "customer": {"name": "Globex Corporation", "domain": "globex.example", "external_ids": customer_ids},
            "project": {
                "name": "Globex ERP migration", "key": "GLOBEXERPM", "customer": "Globex Corporation",
                "budget": {"amount": 250000.0, "currency": "USD"}, "start_date": "2026-11-20",
                "status": "planned", "external_ids": project_ids
            }
        }))
        .unwrap()
    }

    #[test]
    fn engagement_becomes_customer_then_job() {
        let records = records(&engagement(
            json!({"salesforce": "001A"}),
            json!({"salesforce": "006A"}),
        ))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&records).unwrap(),
            json!([
                {"record_type": "customer", "external_id": "salesforce-001A",
                 "fields": {"companyName": "Globex Corporation", "url": "https://globex.example"}},
                {"record_type": "job", "external_id": "salesforce-006A",
                 "fields": {"companyName": "Globex ERP migration", "startDate": "2026-11-20"}}
            ])
        );
    }

    #[test]
    fn the_crm_id_is_preferred_and_any_id_will_do() {
        let records = records(&engagement(
            json!({"psa": "P-1", "hubspot": "77"}),
            json!({"jira": "10001"}),
        ))
        .unwrap();
        assert_eq!(records[0].external_id, "hubspot-77");
        assert_eq!(records[1].external_id, "jira-10001");
    }

    #[test]
    fn a_record_without_external_ids_is_invalid_input() {
        let Err(Error::InvalidInput(message)) =
            records(&engagement(json!({}), json!({"salesforce": "006A"})))
        else {
            panic!("expected invalid input");
        };
        assert!(message.contains("customer.external_ids"), "{message}");
        let Err(Error::InvalidInput(message)) = records(&engagement(
            json!({"hubspot": "1"}),
            json!({"hubspot": " "}),
        )) else {
            panic!("expected invalid input");
        };
        assert!(message.contains("project.external_ids"), "{message}");
    }
}
