//! The demo's governance act: the systems of record are deployed before
//! the first flow, the closed-won run's ids are read back from the id
//! map, and a flow that would write the ERP's copy over the CRM's is
//! refused.

use anyhow::Context;
use serde_json::Value;

use super::client::{Body, Client, done, step};
use crate::shipped;

/// Deploys the shipped governance document.
pub(super) async fn deploy(client: &Client) -> anyhow::Result<()> {
    step("PUT /v1/governance (flows/governance.toml: CRM sells, ERP bills, PSA delivers)");
    let deployed = client
        .send(
            reqwest::Method::PUT,
            "/v1/governance",
            Body::Text(shipped::GOVERNANCE.to_string()),
        )
        .await?;
    done(&format!("version {}", deployed["version"]));
    Ok(())
}

/// A flow that copies the ERP job's budget back over the CRM deal's: the
/// governance refuses it.
pub const BUDGET_FROM_ERP: &str = r#"
name = "erp-budget-to-crm"
trigger = { type = "manual" }
[[steps]]
id = "job"
connection = "netsuite"
operation = "get-job"
input = "{external_id: .trigger.job}"
[[steps]]
id = "deal"
connection = "hubspot"
operation = "update-deal"
input = "{id: .trigger.deal, properties: {amount: .steps.job.fields.projectedTotal}}"
writes = { entity = "project", fields = ["budget.amount"], from = "netsuite" }
"#;

/// The closed-won run's project in every system, then the refused flow.
pub(super) async fn act(client: &Client, run: &Value) -> anyhow::Result<()> {
    println!();
    println!("Governance: one project, one id per system, one owner per field");
    let key = run["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["id"] == "project")
        .and_then(|s| s["output"][0]["key"].as_str())
        .context("the run's project step has no key")?
        .to_string();
    step(&format!("GET /v1/xref/project/{key}"));
    let ids = client
        .send(
            reqwest::Method::GET,
            &format!("/v1/xref/project/{key}"),
            Body::Empty,
        )
        .await?;
    let listed: Vec<String> = ids["ids"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(system, id)| format!("{system} {}", id["id"].as_str().unwrap_or("?")))
        .collect();
    done(&listed.join(", "));
    step("PUT /v1/flows/erp-budget-to-crm (writes the ERP's budget over the CRM deal's)");
    let response = client
        .http
        .put(format!("{}/v1/flows/erp-budget-to-crm", client.base))
        .bearer_auth(&client.token)
        .header("content-type", "application/toml")
        .body(BUDGET_FROM_ERP)
        .send()
        .await?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or_default();
    anyhow::ensure!(
        status == reqwest::StatusCode::UNPROCESSABLE_ENTITY,
        "the governance let a non-owner's write through ({status}): {answer}"
    );
    done(&format!(
        "refused ({}): {}",
        status.as_u16(),
        answer["error"]["message"].as_str().unwrap_or("?")
    ));
    Ok(())
}
