use super::*;
use junction_sdk::apply_json;

fn entry(id: &str, person: &str, role: Option<&str>, date: &str, hours: f64) -> Value {
    json!({"id": id, "project_id": "1001", "person_id": person, "role_id": role,
           "date": date, "hours": hours, "billable": true, "status": "approved",
           "note": null, "approved_at": "2026-11-07T17:00:00.000Z"})
}

fn billing(entries: Vec<Value>) -> Value {
    json!({
        "customer": "Acme Corp", "project_id": "1001", "project_key": "ACME",
        "date": "2026-11-30", "currency": "USD", "entries": entries,
        "roles": [
            {"id": "2001", "project_id": "1001", "name": "Lead engineer", "skills": ["rust"],
             "hours": 80.0, "bill_rate": {"amount": 187.5, "currency": "USD"}},
            {"id": "2002", "name": "Analyst", "bill_rate": {"amount": 33.33, "currency": "USD"}}
        ],
        "people": {"3001": "Ada Lovelace", "3002": "Grace Hopper"},
        "netsuite": {"customer_id": "101", "job_id": "201", "item_id": "55"}
    })
}

fn run(input: Value) -> Result<Vec<Value>> {
    apply_json::<ApprovedTimeToInvoice>(&input.to_string()).map(|outputs| {
        outputs
            .iter()
            .map(|o| serde_json::from_str(o).unwrap())
            .collect()
    })
}

fn one(input: Value) -> Value {
    let mut outputs = run(input).unwrap();
    assert_eq!(outputs.len(), 1);
    outputs.remove(0)
}

#[test]
fn entries_become_one_line_per_role_and_the_netsuite_body() {
    let out = one(billing(vec![
        entry("5001", "3001", Some("2001"), "2026-11-02", 8.0),
        entry("5002", "3002", Some("2002"), "2026-11-03", 4.0),
        entry("5003", "3001", Some("2001"), "2026-11-06", 7.5),
    ]));
    assert_eq!(
        out["invoice"],
        json!({
            "customer": "Acme Corp", "project_key": "ACME", "date": "2026-11-30",
            "currency": "USD", "external_ids": {"psa": "1001"},
            "lines": [
                {"description": "Lead engineer, 2026-11-02 to 2026-11-06", "quantity": 15.5,
                 "unit_price": {"amount": 187.5, "currency": "USD"},
                 "time_entry_ids": ["5001", "5003"]},
                {"description": "Analyst, 2026-11-03", "quantity": 4.0,
                 "unit_price": {"amount": 33.33, "currency": "USD"},
                 "time_entry_ids": ["5002"]}
            ]
        })
    );
    // 15.5 h x 187.50 = 2906.25; 4 h x 33.33 = 133.32.
    assert_eq!(out["total"], json!({"amount": 3039.57, "currency": "USD"}));
    assert_eq!(
        out["netsuite"],
        json!({
            "entity": {"id": "101"}, "job": {"id": "201"}, "tranDate": "2026-11-30",
            "item": {"items": [
                {"item": {"id": "55"}, "quantity": 15.5, "rate": 187.5,
                 "description": "Lead engineer, 2026-11-02 to 2026-11-06"},
                {"item": {"id": "55"}, "quantity": 4.0, "rate": 33.33,
                 "description": "Analyst, 2026-11-03"}
            ]}
        })
    );
    assert_eq!(out["skipped"], json!([]));
}

#[test]
fn totals_are_exact_and_round_each_line_once() {
    // 0.1 + 0.2 hours is 0.3 hours, not 0.30000000000000004; 0.3 h x 33.33 =
    // 9.999, billed 10.00 (rounding each entry would give 3 x 3.33 = 9.99).
    let out = one(billing(vec![
        entry("5001", "3002", Some("2002"), "2026-11-02", 0.1),
        entry("5002", "3002", Some("2002"), "2026-11-03", 0.2),
        entry("5003", "3002", Some("2002"), "2026-11-04", 0.0),
    ]));
    assert_eq!(out["invoice"]["lines"][0]["quantity"], json!(0.3));
    assert_eq!(out["total"]["amount"], json!(10.0));
    // Half a cent rounds up: 0.5 h x 0.01 = 0.005 -> 0.01.
    let mut input = billing(vec![entry("5001", "3002", None, "2026-11-02", 0.5)]);
    input["person_rates"] = json!({"3002": {"amount": 0.01, "currency": "USD"}});
    assert_eq!(one(input)["total"]["amount"], json!(0.01));
    // Many lines whose float sum would drift: 10 x 0.1 h at 0.7 = 0.70 exactly.
    let entries = (0..10)
        .map(|i| entry(&format!("50{i:02}"), "3002", None, "2026-11-02", 0.1))
        .collect();
    let mut input = billing(entries);
    input["person_rates"] = json!({"3002": {"amount": 0.7, "currency": "USD"}});
    let out = one(input);
    assert_eq!(out["invoice"]["lines"][0]["quantity"], json!(1.0));
    assert_eq!(out["total"]["amount"], json!(0.7));
}

#[test]
fn only_approved_billable_entries_are_billed() {
    let mut draft = entry("5002", "3001", Some("2001"), "2026-11-03", 2.0);
    draft["status"] = json!("submitted");
    let mut internal = entry("5003", "3001", Some("2001"), "2026-11-04", 3.0);
    internal["billable"] = json!(false);
    let out = one(billing(vec![
        entry("5001", "3001", Some("2001"), "2026-11-02", 1.0),
        draft.clone(),
        internal.clone(),
    ]));
    assert_eq!(
        out["invoice"]["lines"][0]["time_entry_ids"],
        json!(["5001"])
    );
    assert_eq!(out["total"]["amount"], json!(187.5));
    assert_eq!(
        out["skipped"],
        json!([{"id": "5002", "reason": "status submitted, not approved"},
               {"id": "5003", "reason": "not billable"}])
    );
    // Nothing billable: nothing to pass on.
    assert_eq!(
        run(billing(vec![draft, internal])).unwrap(),
        Vec::<Value>::new()
    );
    assert_eq!(run(billing(vec![])).unwrap(), Vec::<Value>::new());
}

#[test]
fn person_rates_override_roles_and_bill_time_without_a_role() {
    let mut input = billing(vec![
        entry("5001", "3001", Some("2001"), "2026-11-02", 2.0),
        entry("5002", "3002", Some("2001"), "2026-11-02", 1.0),
        entry("5003", "3002", None, "2026-11-05", 1.25),
    ]);
    input["person_rates"] = json!({"3002": {"amount": 150.0, "currency": "USD"}});
    input["netsuite"] = json!({"customer_id": "101", "item_id": "55"});
    let out = one(input);
    let descriptions: Vec<&str> = out["invoice"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["description"].as_str().unwrap())
        .collect();
    assert_eq!(
        descriptions,
        [
            "Lead engineer, 2026-11-02",
            "Lead engineer (Grace Hopper), 2026-11-02",
            "Grace Hopper, 2026-11-05"
        ]
    );
    // 2 x 187.50 + 1 x 150 + 1.25 x 150 = 712.50
    assert_eq!(out["total"]["amount"], json!(712.5));
    assert!(out["netsuite"].get("job").is_none());
}

fn refused(input: Value, expect: &str) {
    match run(input) {
        Err(Error::InvalidInput(message)) => {
            assert!(
                message.contains(expect),
                "`{message}` should say `{expect}`"
            )
        }
        other => panic!("expected invalid input saying `{expect}`, got {other:?}"),
    }
}

#[test]
fn bad_input_is_refused_with_what_is_wrong() {
    let one_entry = |e: Value| billing(vec![e]);
    refused(
        one_entry(entry("5001", "3001", Some("2001"), "2026-11-02", 1.333)),
        "`hours` of time entry 5001",
    );
    refused(
        one_entry(entry("5001", "3001", Some("2001"), "2026-11-02", -1.0)),
        "`hours` of time entry 5001",
    );
    refused(
        one_entry(entry("5001", "3001", Some("2999"), "2026-11-02", 1.0)),
        "role 2999, which is not among `roles`",
    );
    refused(
        one_entry(entry("5001", "3001", None, "2026-11-02", 1.0)),
        "person 3001 has no entry in `person_rates`",
    );
    let mut other_project = entry("5001", "3001", Some("2001"), "2026-11-02", 1.0);
    other_project["project_id"] = json!("1002");
    refused(one_entry(other_project), "is for project 1002, not 1001");
    let twice = entry("5001", "3001", Some("2001"), "2026-11-02", 1.0);
    refused(billing(vec![twice.clone(), twice]), "listed twice");
    let mut euros = one_entry(entry("5001", "3001", Some("2001"), "2026-11-02", 1.0));
    euros["currency"] = json!("EUR");
    refused(
        euros,
        "the bill rate of role 2001 is in USD, but the invoice is in EUR",
    );
    let mut sub_cent = one_entry(entry("5001", "3001", Some("2001"), "2026-11-02", 1.0));
    sub_cent["roles"][0]["bill_rate"]["amount"] = json!(187.555);
    refused(sub_cent, "the bill rate of role 2001");
    let mut no_rate = one_entry(entry("5001", "3001", Some("2001"), "2026-11-02", 1.0));
    no_rate["roles"][0]["bill_rate"] = Value::Null;
    refused(no_rate, "role 2001 has no `bill_rate`");
    let mut bad_date = one_entry(entry("5001", "3001", Some("2001"), "2026-11-02", 1.0));
    bad_date["date"] = json!("30 Nov 2026");
    refused(bad_date, "`date` must be YYYY-MM-DD");
    let mut missing = billing(vec![]);
    missing.as_object_mut().unwrap().remove("netsuite");
    refused(missing, "netsuite");
}
