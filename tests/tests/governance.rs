//! Master-data governance end to end, through the HTTP API of a host with
//! the shipped governance document and flows over the stand-ins: a write
//! of a field with a value not its owner's is refused at deploy (422) or,
//! when its fields are known only at run time, dead-lettered before its
//! call; a new governance version names the deployed steps it refuses;
//! the closed-won run's ids are in the id map, a `lookup` step reads them,
//! and operators link and unlink ids by hand, audited.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use junction::demo::BUDGET_FROM_ERP;
use junction::shipped;
use junction_tests::shipped_host::host;
use junction_tests::step;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_with_a_value_not_its_owners_is_refused_at_deploy() {
    let h = host().await;
    let (status, answer) = h
        .send(
            "PUT",
            "/v1/flows/erp-budget-to-crm",
            Some(BUDGET_FROM_ERP.into()),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_flow");
    assert_eq!(
        answer["error"]["message"],
        "step `deal` writes project.budget.amount with the value of `netsuite` (system `erp`), \
         but system `crm` (hubspot, salesforce) owns project.budget.amount (under `budget`) in \
         governance version 1: a field is written only with its owner's value; take it from \
         `crm` or change its owner in the governance document"
    );
    let (status, _) = h.send("GET", "/v1/flows/erp-budget-to-crm", None).await;
    assert_eq!(status, 404, "a refused flow is not deployed");

    // What a step declares is checked against the canonical schemas too.
    let typo = BUDGET_FROM_ERP.replace("budget.amount", "budgt");
    let (status, answer) = h
        .send("PUT", "/v1/flows/erp-budget-to-crm", Some(typo.into()))
        .await;
    assert_eq!(status, 422, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("steps[1] (id `deal`): writes.fields: project has no field `budgt`; its fields are: budget, customer, external_ids, key, name, start_date, status"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_known_only_at_run_time_are_refused_before_the_call_and_dead_lettered() {
    let h = host().await;
    let flow = r#"
trigger = { type = "manual" }
[[steps]]
id = "deal"
connection = "hubspot"
operation = "update-deal"
input = "{id: .trigger.deal, properties: .trigger.properties}"
retry = { attempts = 5, backoff_ms = 10 }
writes = { entity = "project", fields_from = ".trigger.canonical", from = "netsuite" }
"#;
    h.call_toml("/v1/flows/copy-to-crm", flow).await;
    let started = h
        .call(
            "POST",
            "/v1/flows/copy-to-crm/runs",
            Some(json!({"deal": "1", "properties": {"dealname": "x"}, "canonical": {"name": "x"}})),
        )
        .await;
    let run = h.finished(started["run"].as_str().unwrap()).await;
    assert_eq!(run["status"], "failed", "{run:#}");
    let deal = step(&run, "deal");
    let errors = deal["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "a refusal is not retried: {deal:#}");
    assert_eq!(errors[0]["kind"], "governance");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("step `deal` writes project.name with the value of `netsuite` (system `erp`), but system `crm` (hubspot, salesforce) owns project.name"),
        "{deal:#}"
    );
    let hubspot_writes: Vec<_> = h
        .estate
        .hubspot
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert!(hubspot_writes.is_empty(), "{hubspot_writes:?}");
    let letters = h
        .call("GET", "/v1/dead-letters?flow=copy-to-crm", None)
        .await;
    let letter = &letters["dead_letters"][0];
    assert_eq!(letter["step"], "deal", "{letters:#}");
    assert_eq!(letter["errors"][0]["kind"], "governance", "{letters:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_governance_version_names_the_deployed_steps_it_refuses() {
    let h = host().await;
    let (status, bad) = h
        .send(
            "PUT",
            "/v1/governance",
            Some("[systems]\ncrm = [\"hubspot\"]\n[entities.deal]\ncrm = [\"name\"]\n".into()),
        )
        .await;
    assert_eq!(status, 422, "{bad}");
    assert_eq!(bad["error"]["code"], "invalid_governance");
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("entities.deal: `deal` is not a canonical entity; they are: assignment, contact, customer"),
        "{bad}"
    );

    let unchanged = h.call_toml("/v1/governance", shipped::GOVERNANCE).await;
    assert_eq!(unchanged["version"], 1);
    assert_eq!(unchanged["changed"], false);

    // The ERP takes over project budgets: the closed-won flows copy the
    // CRM's, so their budget-writing steps are now refused.
    let erp_budgets = shipped::GOVERNANCE.replace(
        "crm = [\"name\", \"customer\", \"budget\", \"start_date\"]",
        "crm = [\"name\", \"customer\", \"start_date\"]\nerp = [\"budget\"]",
    );
    let deployed = h.call_toml("/v1/governance", &erp_budgets).await;
    assert_eq!(deployed["version"], 2, "{deployed:#}");
    let conflicts: Vec<(String, String)> = deployed["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let message = c["message"].as_str().unwrap();
            let step = message.split('`').nth(1).unwrap();
            (c["flow"].as_str().unwrap().to_string(), step.to_string())
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("closed-won-to-project", "erp_job"),
        ("closed-won-to-project", "psa_project"),
        ("salesforce-closed-won-to-project", "erp_job"),
        ("salesforce-closed-won-to-project", "psa_project"),
    ]
    .iter()
    .map(|(f, s)| (f.to_string(), s.to_string()))
    .collect();
    assert_eq!(conflicts, expected, "{deployed:#}");

    // A deal won now stops at its first budget write, before the call.
    let run = h.finished(&h.deal_won().await).await;
    assert_ne!(run["status"], "completed", "{run:#}");
    let refused: Vec<&str> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["errors"][0]["kind"] == "governance")
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(!refused.is_empty(), "{run:#}");
    assert!(
        refused
            .iter()
            .all(|s| ["erp_job", "psa_project"].contains(s)),
        "{refused:?}"
    );
    assert!(h.estate.netsuite.jobs().is_empty(), "no job was written");
    assert!(
        h.estate.psa.projects().is_empty(),
        "no PSA project was written"
    );

    let current = h.call("GET", "/v1/governance", None).await;
    assert_eq!(current["version"], 2);
    assert_eq!(
        current["document"]["entities"]["project"]["erp"],
        json!(["budget"])
    );
    let audit = h
        .call("GET", "/v1/audit?action=governance.deploy", None)
        .await;
    let outcomes: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["ok", "ok", "refused", "ok"], "{audit:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_closed_won_run_records_each_systems_id_and_a_lookup_step_reads_them() {
    let h = host().await;
    let run = h.finished(&h.deal_won().await).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let key = step(&run, "project")["output"][0]["key"].as_str().unwrap();
    let deal = step(&run, "deal")["output"]["id"].as_str().unwrap();
    let job = h.estate.netsuite.jobs()[0]["id"].clone();
    let psa = h.estate.psa.projects()[0]["id"].clone();
    let ids = h
        .call("GET", &format!("/v1/xref/project/{key}"), None)
        .await;
    let id = |system: &str| ids["ids"][system]["id"].as_str().unwrap().to_string();
    assert_eq!(id("hubspot"), deal, "{ids:#}");
    assert_eq!(id("netsuite"), text(&job), "{ids:#}");
    assert_eq!(id("psa"), text(&psa), "{ids:#}");
    assert_eq!(id("jira"), "GLOBEXERPR", "{ids:#}");
    assert_eq!(ids["ids"]["jira"]["flow"], "closed-won-to-project");
    assert_eq!(ids["ids"]["jira"]["run"], run["id"]);

    let by_job = h
        .call(
            "GET",
            &format!("/v1/xref/project?system=netsuite&id={}", text(&job)),
            None,
        )
        .await;
    assert_eq!(by_job["key"], key);
    let customer = h
        .call("GET", "/v1/xref/customer/globex.example", None)
        .await;
    assert_eq!(
        customer["ids"]["netsuite"]["id"],
        text(&h.estate.netsuite.customers()[0]["id"]),
        "{customer:#}"
    );
    assert!(customer["ids"]["hubspot"]["id"].is_string(), "{customer:#}");

    // Another flow finds the project from the deal's id alone.
    let lookup = r#"
trigger = { type = "manual" }
[[steps]]
id = "ids"
lookup = { entity = "project", system = "hubspot", id = ".trigger.deal" }
"#;
    h.call_toml("/v1/flows/where-is-the-deal", lookup).await;
    let started = h
        .call(
            "POST",
            "/v1/flows/where-is-the-deal/runs",
            Some(json!({"deal": deal})),
        )
        .await;
    let found = h.finished(started["run"].as_str().unwrap()).await;
    let output = &step(&found, "ids")["output"];
    assert_eq!(output["found"], true, "{found:#}");
    assert_eq!(output["key"], key);
    assert_eq!(output["ids"]["jira"], "GLOBEXERPR");
    assert_eq!(output["ids"]["netsuite"], text(&job));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_link_and_unlink_ids_by_hand_audited() {
    let h = host().await;
    let linked = h
        .call(
            "PUT",
            "/v1/xref/customer/acme.example/netsuite",
            Some(json!({"id": "77"})),
        )
        .await;
    assert_eq!(linked["ids"]["netsuite"]["id"], "77");
    assert_eq!(linked["ids"]["netsuite"]["by"], "admin");
    h.call(
        "PUT",
        "/v1/xref/customer/acme.example/hubspot",
        Some(json!({"id": "5"})),
    )
    .await;
    // The same NetSuite customer given to a second key is a duplicate.
    h.call(
        "PUT",
        "/v1/xref/customer/acme.test/netsuite",
        Some(json!({"id": "77"})),
    )
    .await;
    let (status, twice) = h
        .send("GET", "/v1/xref/customer?system=netsuite&id=77", None)
        .await;
    assert_eq!(status, 409, "{twice}");
    assert!(
        twice["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("2 customer keys have id `77` in `netsuite`: acme.example, acme.test"),
        "{twice}"
    );
    let unlinked = h
        .call("DELETE", "/v1/xref/customer/acme.test/netsuite", None)
        .await;
    assert_eq!(unlinked["ids"], json!({}));
    let found = h
        .call("GET", "/v1/xref/customer?system=netsuite&id=77", None)
        .await;
    assert_eq!(found["key"], "acme.example");
    assert_eq!(found["ids"]["hubspot"]["id"], "5");

    let audit = h.call("GET", "/v1/audit?action=xref.unlink", None).await;
    assert_eq!(audit["entries"][0]["target"], "customer/acme.test/netsuite");
    assert_eq!(audit["entries"][0]["detail"], "unlinked id 77");

    let (status, wrong) = h.send("GET", "/v1/xref/deal/1", None).await;
    assert_eq!(status, 422, "{wrong}");
    assert_eq!(wrong["error"]["code"], "invalid_governance");
    let (status, missing) = h
        .send("GET", "/v1/xref/customer/nobody.example", None)
        .await;
    assert_eq!(status, 404, "{missing}");
    let (status, bare) = h.send("GET", "/v1/xref/customer", None).await;
    assert_eq!(status, 400, "{bare}");
    assert!(
        bare["error"]["message"]
            .as_str()
            .unwrap()
            .contains("?system=hubspot&id=123"),
        "{bare}"
    );
}

/// A JSON id as the id map holds it: strings as they are, numbers as text.
fn text(id: &Value) -> String {
    id.as_str().map_or_else(|| id.to_string(), str::to_string)
}
