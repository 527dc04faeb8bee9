//! The flows Junction ships (`flows/`), end to end against the SaaS
//! stand-ins, through the HTTP API on loopback, as the demo runs them:
//! a closed-won HubSpot deal sets up delivery in every system; Jira down for
//! a while is retried as the flow says; a Salesforce opportunity is read
//! through Salesforce's 429 with its limit headers; a signed contract
//! activates the PSA project.
//!
//! Nothing waits a fixed time: runs are polled until they end, with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use junction::demo;
use junction_standins::Misbehaviour;
use junction_tests::shipped_host::host;
use junction_tests::step;
use serde_json::{Value, json};

/// The values of header `name` on the requests a stand-in recorded.
fn header_values(requests: &[junction_standins::RecordedRequest], name: &str) -> Vec<String> {
    requests
        .iter()
        .flat_map(|r| r.headers.iter())
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_won_deal_sets_up_delivery_in_every_system() {
    let h = host().await;
    let run_id = h.deal_won().await;
    let run = h.finished(&run_id).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    // Nobody was booked before the resource manager confirmed the plan.
    let confirmed = step(&run, "staffing_confirmed");
    assert_eq!(confirmed["output"]["decision"], "approve", "{confirmed:#}");
    assert_eq!(confirmed["output"]["by"], "admin");
    let booked = step(&run, "assignments")["started_at"].as_str().unwrap();
    let decided = confirmed["output"]["at"].as_str().unwrap();
    assert!(
        decided <= booked,
        "confirmed at {decided}, booked at {booked}"
    );
    assert_eq!(run["signals"][0]["comment"], "plan confirmed");

    let customers = h.estate.netsuite.customers();
    let jobs = h.estate.netsuite.jobs();
    assert_eq!(customers.len(), 1, "{customers:#?}");
    assert_eq!(customers[0]["companyName"], "Globex Corporation");
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    assert_eq!(jobs[0]["companyName"], "Globex ERP rollout");
    assert_eq!(jobs[0]["parent"]["id"], customers[0]["id"]);

    let projects = h.estate.psa.projects();
    assert_eq!(projects.len(), 1);
    assert_eq!(projects[0]["status"], "pending");
    assert_eq!(projects[0]["external_id"], jobs[0]["externalId"]);
    assert_eq!(h.estate.psa.roles().len(), 3);
    // The optimizer staffed every role with someone who has its skills.
    let assignments = h.estate.psa.assignments();
    assert!(assignments.len() >= 3, "{assignments:#?}");
    let staffed: f64 = assignments
        .iter()
        .map(|a| a["hours"].as_f64().unwrap())
        .sum();
    assert_eq!(staffed, 80.0 + 160.0 + 120.0, "{assignments:#?}");

    let jira_projects = h.estate.jira.projects();
    assert_eq!(jira_projects.len(), 1);
    assert_eq!(jira_projects[0]["key"], "GLOBEXERPR");
    let issues = h.estate.jira.issues();
    assert_eq!(issues.len(), 1);
    assert_eq!(
        issues[0]["fields"]["summary"],
        "Kickoff: Globex ERP rollout"
    );

    // Each write is idempotent the way its system honours: NetSuite's are
    // upserts by external id, the PSA's carry the step's key.
    let erp_writes: Vec<String> = h
        .estate
        .netsuite
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(erp_writes.len(), 2, "{erp_writes:?}");
    assert!(
        erp_writes
            .iter()
            .all(|w| w.starts_with("PUT ") && w.contains("/eid:")),
        "{erp_writes:?}"
    );
    let psa_keys = header_values(&h.estate.psa.requests(), "idempotency-key");
    assert!(
        psa_keys.contains(&format!("{run_id}:assignments:0")),
        "{psa_keys:?}"
    );
    assert_eq!(
        step(&run, "jira_project")["idempotency_key"],
        format!("{run_id}:jira_project")
    );

    // The flow measures its setup, from the deal's business time to the assignments.
    let kpis = h.call("GET", "/v1/kpis", None).await;
    let setup = &kpis["kpis"]["project_setup"];
    assert_eq!(setup["measure"], "duration", "{kpis:#}");
    let flows = setup["flows"].as_array().unwrap();
    let of = |flow: &str| flows.iter().find(|f| f["flow"] == flow).unwrap();
    let hubspot = of("closed-won-to-project");
    assert_eq!(hubspot["count"], 1, "{kpis:#}");
    assert_eq!(hubspot["started_from"]["trigger_time"], 1, "{kpis:#}");
    assert!(hubspot["p50_seconds"].as_f64().unwrap() >= 0.0, "{kpis:#}");
    // The Salesforce flow declares the same KPI; it has not run.
    assert_eq!(of("salesforce-closed-won-to-project")["count"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_euro_deal_stays_in_euros_though_hubspot_reads_leave_the_currency_out_by_default() {
    let h = host().await;
    let run = h.finished(&h.deal_won_in("EUR").await).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    // The flow names the properties it reads: HubSpot's default set has no currency.
    assert_eq!(
        step(&run, "deal")["output"]["properties"]["deal_currency_code"],
        "EUR"
    );
    assert_eq!(
        step(&run, "company")["output"]["properties"]["country"],
        "United States"
    );
    assert_eq!(
        step(&run, "project")["output"][0]["budget"]["currency"],
        "EUR"
    );
    let projects = h.estate.psa.projects();
    assert_eq!(projects[0]["budget"]["currency"], "EUR", "{projects:#?}");
    let reads: Vec<String> = h
        .estate
        .hubspot
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .filter_map(|r| r.query)
        .collect();
    assert!(
        reads.iter().any(|q| q.contains("deal_currency_code")),
        "{reads:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jira_down_for_a_while_is_retried_as_the_flow_says() {
    let h = host().await;
    h.estate
        .jira
        .misbehave(Misbehaviour::ServerError { times: 2 });
    let run = h.finished(&h.deal_won().await).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let jira = step(&run, "jira_project");
    assert_eq!(jira["attempts"], 3, "{jira:#}");
    let errors = jira["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{jira:#}");
    assert!(
        errors.iter().all(|e| e["kind"] == "unavailable"),
        "{jira:#}"
    );
    // One project, one issue: the failed attempts made nothing.
    assert_eq!(h.estate.jira.projects().len(), 1);
    assert_eq!(h.estate.jira.issues().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salesforce_opportunity_is_read_through_its_rate_limit() {
    let h = host().await;
    let sf = &h.estate.salesforce;
    let data = format!("{}/services/data/v60.0", sf.base_url());
    let post = |path: &str, body: Value| {
        h.http
            .post(format!("{data}{path}"))
            .bearer_auth(demo::SALESFORCE_TOKEN)
            .json(&body)
            .send()
    };
    let account: Value = post(
        "/sobjects/Account/",
        json!({"Name": "Initech", "Website": "https://www.initech.example", "BillingCountry": "US"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let opportunity: Value = post(
        "/sobjects/Opportunity/",
        json!({
            "Name": "Initech finance transformation", "StageName": "Closed Won",
            "CloseDate": "2026-12-07", "Amount": 180000, "AccountId": account["id"]
        }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    sf.misbehave(Misbehaviour::RateLimited {
        times: 1,
        retry_after_secs: 1,
    });
    let started = h
        .call(
            "POST",
            "/v1/flows/salesforce-closed-won-to-project/runs",
            Some(json!({"opportunity_id": opportunity["id"]})),
        )
        .await;
    let run = h.finished(started["run"].as_str().unwrap()).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let read = step(&run, "opportunity");
    assert_eq!(read["attempts"], 2, "{read:#}");
    assert_eq!(read["errors"][0]["kind"], "rate_limited", "{read:#}");
    // The limit header came with the refusal and with every answer.
    assert!(
        sf.requests().len() >= 3,
        "the refused read, its retry, the account read"
    );
    assert_eq!(h.estate.netsuite.customers()[0]["companyName"], "Initech");
    assert_eq!(
        h.estate.jira.projects()[0]["name"],
        "Initech finance transformation"
    );
    assert_eq!(
        h.estate.psa.projects()[0]["external_id"],
        format!("salesforce-{}", opportunity["id"].as_str().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_contract_activates_the_psa_project() {
    let h = host().await;
    let run = h.finished(&h.deal_won().await).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let external_id = h.estate.psa.projects()[0]["external_id"]
        .as_str()
        .unwrap()
        .to_string();
    h.estate.contracts.subscribe_webhooks(
        &format!("{}/v1/webhooks/contracts", h.base),
        demo::CONTRACT_SECRET,
    );
    let contract = demo::send_contract(&h.estate.contracts, &external_id)
        .await
        .unwrap();
    h.estate.contracts.sign(&contract).unwrap();
    let run = h.first_run_of("contract-signed-activates-project").await;
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(step(&run, "contract")["output"]["status"], "completed");
    assert_eq!(h.estate.psa.projects()[0]["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_time_becomes_one_netsuite_invoice_at_the_role_rates() {
    let h = host().await;
    let run = h.finished(&h.deal_won().await).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let psa = &h.estate.psa;
    let api = format!("{}{}", psa.base_url(), junction_standins::psa::API_PATH);
    let project = psa.projects()[0]["id"].as_str().unwrap().to_string();
    let send = |method: reqwest::Method, path: String, body: Value| {
        let request = h
            .http
            .request(method, format!("{api}{path}"))
            .bearer_auth(demo::PSA_TOKEN)
            .json(&body);
        async move {
            let answer = request.send().await.unwrap();
            assert!(answer.status().is_success(), "{answer:?}");
            answer.json::<Value>().await.unwrap()
        }
    };
    send(
        reqwest::Method::PATCH,
        format!("/projects/{project}"),
        json!({"status": "active"}),
    )
    .await;
    // Time on two roles, at 220 and 180 an hour; one entry stays submitted.
    let assignments = psa.assignments();
    let mut approved = 0.0;
    for (n, (a, hours)) in assignments.iter().zip([10.0, 7.5, 4.0]).enumerate() {
        let entry = send(
            reqwest::Method::POST,
            "/time_entries".into(),
            json!({
                "project_id": project, "person_id": a["person_id"], "role_id": a["role_id"],
                "date": format!("2026-12-0{}", n + 1), "hours": hours, "status": "submitted"
            }),
        )
        .await;
        if n < 2 {
            send(
                reqwest::Method::PATCH,
                format!("/time_entries/{}", entry["id"].as_str().unwrap()),
                json!({"status": "approved"}),
            )
            .await;
            approved += hours;
        }
    }
    let started = h
        .call(
            "POST",
            "/v1/flows/approved-time-to-invoice/runs",
            Some(json!({"project_id": project, "since": null, "item_id": "501"})),
        )
        .await;
    let run = h.finished(started["run"].as_str().unwrap()).await;
    assert_eq!(run["status"], "completed", "{run:#}");

    let invoices = h.estate.netsuite.invoices();
    assert_eq!(invoices.len(), 1, "{invoices:#?}");
    let invoice = &invoices[0];
    let job = &h.estate.netsuite.jobs()[0];
    assert_eq!(invoice["entity"]["id"], job["parent"]["id"]);
    assert_eq!(invoice["job"]["id"], job["id"]);
    let lines = invoice["item"]["items"].as_array().unwrap();
    let hours: f64 = lines.iter().map(|l| l["quantity"].as_f64().unwrap()).sum();
    assert_eq!(hours, approved, "only approved time is billed: {lines:#?}");
    let total: f64 = lines
        .iter()
        .map(|l| l["quantity"].as_f64().unwrap() * l["rate"].as_f64().unwrap())
        .sum();
    assert_eq!(total, 10.0 * 220.0 + 7.5 * 180.0, "{lines:#?}");
    assert_eq!(
        step(&run, "invoice")["output"][0]["total"]["amount"],
        3550.0
    );
    // Approved time to invoice starts at the earliest approval it billed.
    let kpis = h.call("GET", "/v1/kpis", None).await;
    let to_invoice = &kpis["kpis"]["approved_time_to_invoice"]["flows"][0];
    assert_eq!(to_invoice["flow"], "approved-time-to-invoice", "{kpis:#}");
    assert_eq!(to_invoice["count"], 1, "{kpis:#}");
    assert_eq!(to_invoice["started_from"]["from_time"], 1, "{kpis:#}");
    assert_eq!(
        kpis["kpis"]["invoice_blocked"],
        json!({"measure": "blocked", "runs": 0, "open": 0,
               "flows": [{"flow": "approved-time-to-invoice", "runs": 0, "open": 0}]})
    );
    // The next run starts from the cursor: nothing new is approved, nothing is billed.
    let cursor = step(&run, "time")["output"]["next_cursor"].clone();
    let started = h
        .call(
            "POST",
            "/v1/flows/approved-time-to-invoice/runs",
            Some(json!({"project_id": project, "since": cursor})),
        )
        .await;
    let again = h.finished(started["run"].as_str().unwrap()).await;
    assert_eq!(again["status"], "completed", "{again:#}");
    assert_eq!(step(&again, "erp_invoice")["status"], "skipped");
    assert_eq!(h.estate.netsuite.invoices().len(), 1);
}
