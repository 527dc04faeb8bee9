//! sObject records: `create-record`, `get-record`, `update-record` and
//! `upsert-record`.

use junction_sdk::http::{Request, encode_component};
use junction_sdk::{Context, Error, JsonSchema, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api::{api_name, data_url, record_id, send};
use crate::query::{run_query, soql_quote};

/// Input of `create-record`.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct CreateRecord {
    /// The sObject type, e.g. `Account`.
    pub(crate) sobject: String,
    /// Field values by API name, e.g. `{"Name": "Acme"}`.
    pub(crate) fields: Map<String, Value>,
}

/// A saved record: its id and whether this call created it.
#[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Saved {
    /// The record's 18-character id.
    pub(crate) id: String,
    /// True when the call created the record, false when it updated one.
    pub(crate) created: bool,
}

pub(crate) fn create_record(ctx: &Context, input: CreateRecord) -> Result<Saved> {
    let sobject = api_name("sobject", &input.sobject)?;
    let url = format!("{}/sobjects/{sobject}/", data_url(ctx)?);
    let response = send(Request::post(url).json(&input.fields)?)?;
    #[derive(Deserialize)]
    struct Created {
        id: String,
    }
    let created: Created = response.json()?;
    Ok(Saved {
        id: created.id,
        created: true,
    })
}

/// Input of `get-record`.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct GetRecord {
    /// The sObject type, e.g. `Account`.
    pub(crate) sobject: String,
    /// The record id, 15 or 18 characters.
    pub(crate) id: String,
    /// The fields to read; every field when absent.
    #[serde(default)]
    pub(crate) fields: Option<Vec<String>>,
}

/// The record as Salesforce returns it: `attributes`, `Id` and the fields.
pub(crate) fn get_record(ctx: &Context, input: GetRecord) -> Result<Value> {
    let sobject = api_name("sobject", &input.sobject)?;
    let id = record_id(&input.id)?;
    let mut url = format!("{}/sobjects/{sobject}/{id}", data_url(ctx)?);
    if let Some(fields) = &input.fields {
        let names = fields
            .iter()
            .map(|f| api_name("fields", f))
            .collect::<Result<Vec<_>>>()?;
        url.push_str("?fields=");
        url.push_str(&names.join(","));
    }
    send(Request::get(url))?.json()
}

/// Input of `update-record`.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct UpdateRecord {
    /// The sObject type, e.g. `Account`.
    pub(crate) sobject: String,
    /// The record id, 15 or 18 characters.
    pub(crate) id: String,
    /// The fields to set, by API name.
    pub(crate) fields: Map<String, Value>,
}

/// Output of `update-record`.
#[derive(Debug, PartialEq, Serialize, JsonSchema)]
pub(crate) struct Updated {
    /// The id of the updated record.
    pub(crate) id: String,
}

pub(crate) fn update_record(ctx: &Context, input: UpdateRecord) -> Result<Updated> {
    let sobject = api_name("sobject", &input.sobject)?;
    let id = record_id(&input.id)?;
    let url = format!("{}/sobjects/{sobject}/{id}", data_url(ctx)?);
    send(Request::patch(url).json(&input.fields)?)?;
    Ok(Updated { id: id.into() })
}

/// Input of `upsert-record`.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct UpsertRecord {
    /// The sObject type, e.g. `Account`.
    pub(crate) sobject: String,
    /// The external-ID field that addresses the record, e.g. `External_Id__c`.
    pub(crate) external_id_field: String,
    /// Its value.
    pub(crate) external_id: String,
    /// The other fields to set, by API name.
    pub(crate) fields: Map<String, Value>,
}

pub(crate) fn upsert_record(ctx: &Context, input: UpsertRecord) -> Result<Saved> {
    let sobject = api_name("sobject", &input.sobject)?;
    let field = api_name("external_id_field", &input.external_id_field)?;
    if input.external_id.is_empty() {
        return Err(Error::InvalidInput(
            "`external_id` must not be empty".into(),
        ));
    }
    let url = format!(
        "{}/sobjects/{sobject}/{field}/{}",
        data_url(ctx)?,
        encode_component(&input.external_id)
    );
    let response = send(Request::patch(url).json(&input.fields)?)?;
    // 201 with a body when created; 200 with one when updated (API v46.0 and
    // later), or 204 without one (earlier versions): then look the id up.
    if response.status == 204 {
        let soql = format!(
            "SELECT Id FROM {sobject} WHERE {field} = {} LIMIT 1",
            soql_quote(&input.external_id)
        );
        let page = run_query(ctx, &soql)?;
        let id = page
            .records
            .first()
            .and_then(|r| r.get("Id"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::Internal(format!(
                    "Salesforce updated {sobject} {field} = `{}` but no such record is found",
                    input.external_id
                ))
            })?;
        return Ok(Saved {
            id: id.into(),
            created: false,
        });
    }
    #[derive(Deserialize)]
    struct Upserted {
        id: String,
        #[serde(default)]
        created: Option<bool>,
    }
    let upserted: Upserted = response.json()?;
    Ok(Saved {
        id: upserted.id,
        created: upserted.created.unwrap_or(response.status == 201),
    })
}
