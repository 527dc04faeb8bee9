//! The Salesforce stand-in, driven over HTTP the way a connector would.

// The shared helpers below are test code too; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

use junction_standins::{Misbehaviour, SalesforceStandin};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "00D5g000000abcd!session-token";
const DATA: &str = "/services/data/v60.0";

struct Fixture {
    salesforce: SalesforceStandin,
    client: Client,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture {
            salesforce: SalesforceStandin::start(TOKEN).await.unwrap(),
            client: Client::new(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.salesforce.base_url()))
            .bearer_auth(TOKEN)
    }

    async fn send(&self, method: Method, path: &str, body: Value) -> Response {
        self.request(method, &format!("{DATA}{path}"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.unwrap()
    }

    async fn query(&self, soql: &str) -> Response {
        self.request(Method::GET, &format!("{DATA}/query"))
            .query(&[("q", soql)])
            .send()
            .await
            .unwrap()
    }

    async fn create_account(&self, fields: Value) -> String {
        let response = self.send(Method::POST, "/sobjects/Account/", fields).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }
}

/// Checks the error-array shape and returns the status and the first error.
async fn error_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    let errors = body.as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert!(errors[0]["message"].is_string());
    assert!(errors[0]["errorCode"].is_string());
    assert!(errors[0]["fields"].is_array());
    (status, errors[0].clone())
}

fn usage_of(response: &Response) -> (u64, u64) {
    let info = response.headers()["sforce-limit-info"].to_str().unwrap();
    let (used, max) = info
        .strip_prefix("api-usage=")
        .unwrap()
        .split_once('/')
        .unwrap();
    (used.parse().unwrap(), max.parse().unwrap())
}

#[tokio::test]
async fn creates_reads_and_updates_a_record() {
    let f = Fixture::new().await;
    let response = f
        .send(
            Method::POST,
            "/sobjects/Account/",
            json!({"Name": "Acme Corp", "Industry": "Manufacturing"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["success"], true);
    assert_eq!(created["errors"], json!([]));
    let id = created["id"].as_str().unwrap();
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("001"));

    let record: Value = f
        .get(&format!("{DATA}/sobjects/Account/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(record["Id"], id);
    assert_eq!(record["Name"], "Acme Corp");
    assert_eq!(record["attributes"]["type"], "Account");
    assert_eq!(
        record["attributes"]["url"],
        format!("{DATA}/sobjects/Account/{id}")
    );
    assert!(record["CreatedDate"].as_str().unwrap().ends_with("+0000"));

    let patched = f
        .send(
            Method::PATCH,
            &format!("/sobjects/Account/{id}"),
            json!({"Industry": "Energy"}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::NO_CONTENT);
    let stored = &f.salesforce.records("Account")[0];
    assert_eq!(stored["Industry"], "Energy");
    assert_eq!(stored["Name"], "Acme Corp");

    // The 15-character form of the id addresses the same record.
    let short = f
        .get(&format!("{DATA}/sobjects/Account/{}", &id[..15]))
        .await;
    assert_eq!(short.status(), StatusCode::OK);
}

#[tokio::test]
async fn upserts_by_external_id() {
    let f = Fixture::new().await;
    let path = "/sobjects/Account/Junction_External_Id__c/HS-9876";
    let created = f.send(Method::PATCH, path, json!({"Name": "Acme"})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["created"], true);
    assert_eq!(body["success"], true);

    // Since API v46.0 an upsert that updates answers 200 with the id and `created: false`.
    let updated = f
        .send(Method::PATCH, path, json!({"Name": "Acme Corp"}))
        .await;
    assert_eq!(updated.status(), StatusCode::OK);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(
        updated,
        json!({"id": body["id"], "success": true, "errors": [], "created": false})
    );
    // Earlier versions answer 204 without a body.
    let old = f
        .request(Method::PATCH, &format!("/services/data/v45.0{path}"))
        .json(&json!({"Name": "Acme Corp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::NO_CONTENT);

    let accounts = f.salesforce.records("Account");
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["Id"], body["id"]);
    assert_eq!(accounts[0]["Name"], "Acme Corp");
    assert_eq!(accounts[0]["Junction_External_Id__c"], "HS-9876");

    let (status, error) = error_of(
        f.send(Method::PATCH, "/sobjects/Account/Name/Acme", json!({}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["errorCode"], "NOT_FOUND");
}

#[tokio::test]
async fn required_and_duplicate_errors() {
    let f = Fixture::new().await;
    let (status, error) = error_of(
        f.send(
            Method::POST,
            "/sobjects/Opportunity/",
            json!({"Name": "Rollout"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(error["fields"], json!(["StageName", "CloseDate"]));
    assert_eq!(
        error["message"],
        "Required fields are missing: [StageName, CloseDate]"
    );

    let first = f
        .create_account(json!({"Name": "A", "ERP_External_Id__c": "NS-1"}))
        .await;
    let (status, error) = error_of(
        f.send(
            Method::POST,
            "/sobjects/Account/",
            json!({"Name": "B", "ERP_External_Id__c": "NS-1"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["errorCode"], "DUPLICATE_VALUE");
    assert!(error["message"].as_str().unwrap().ends_with(&first));
    assert_eq!(f.salesforce.records("Account").len(), 1);

    let (status, error) = error_of(
        f.send(
            Method::PATCH,
            &format!("/sobjects/Account/{first}"),
            json!({"Name": ""}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["errorCode"], "REQUIRED_FIELD_MISSING");
}

#[tokio::test]
async fn not_found_and_bad_json() {
    let f = Fixture::new().await;
    for response in [
        f.get(&format!("{DATA}/sobjects/Account/001000000000000AAA"))
            .await,
        f.send(Method::POST, "/sobjects/Widget/", json!({})).await,
        f.get("/services/data/latest/sobjects").await,
    ] {
        let (status, error) = error_of(response).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(error["errorCode"], "NOT_FOUND");
    }
    let bad = f
        .request(Method::POST, &format!("{DATA}/sobjects/Account/"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["errorCode"], "JSON_PARSER_ERROR");
}

#[tokio::test]
async fn query_filters_and_selects_fields() {
    let f = Fixture::new().await;
    f.create_account(json!({"Name": "Acme", "Industry": "Energy"}))
        .await;
    f.create_account(json!({"Name": "Globex", "Industry": "Energy"}))
        .await;
    f.create_account(json!({"Name": "Initech", "Industry": "Software"}))
        .await;

    let page: Value = f
        .query("SELECT Id, Name FROM Account WHERE Industry = 'energy'")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["totalSize"], 2);
    assert_eq!(page["done"], true);
    assert!(page.get("nextRecordsUrl").is_none());
    let records = page["records"].as_array().unwrap();
    assert_eq!(records[0]["Name"], "Acme");
    assert_eq!(records[1]["Name"], "Globex");
    assert_eq!(records[0]["attributes"]["type"], "Account");
    assert!(records[0].get("Industry").is_none());

    let (status, error) = error_of(f.query("SELECT FROM Account").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["errorCode"], "MALFORMED_QUERY");
    let (status, error) = error_of(f.query("SELECT Id FROM Widget").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["errorCode"], "INVALID_TYPE");
}

#[tokio::test]
async fn query_paging_walks_every_record() {
    let f = Fixture::new().await;
    for n in 0..7 {
        f.create_account(json!({"Name": format!("Account {n}")}))
            .await;
    }
    f.salesforce.set_query_batch_size(Some(3));
    let mut names = Vec::new();
    let mut pages = 0;
    let mut response = f.query("SELECT Name FROM Account").await;
    loop {
        let page: Value = response.json().await.unwrap();
        pages += 1;
        assert_eq!(page["totalSize"], 7);
        for record in page["records"].as_array().unwrap() {
            names.push(record["Name"].as_str().unwrap().to_owned());
        }
        if page["done"] == true {
            assert!(page.get("nextRecordsUrl").is_none());
            break;
        }
        let next = page["nextRecordsUrl"].as_str().unwrap();
        assert!(next.starts_with(&format!("{DATA}/query/")));
        response = f.get(next).await;
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..7).map(|n| format!("Account {n}")).collect();
    assert_eq!(names, expected);

    let (status, error) = error_of(f.get(&format!("{DATA}/query/01gNOPE-3")).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["errorCode"], "INVALID_QUERY_LOCATOR");
}

#[tokio::test]
async fn composite_resolves_references() {
    let f = Fixture::new().await;
    let response = f
        .send(
            Method::POST,
            "/composite",
            json!({
                "allOrNone": true,
                "compositeRequest": [
                    {
                        "method": "POST",
                        "url": format!("{DATA}/sobjects/Account"),
                        "referenceId": "acct",
                        "body": {"Name": "Acme"}
                    },
                    {
                        "method": "POST",
                        "url": format!("{DATA}/sobjects/Contact"),
                        "referenceId": "contact",
                        "body": {"LastName": "Doe", "AccountId": "@{acct.id}"}
                    },
                    {
                        "method": "GET",
                        "url": format!("{DATA}/sobjects/Account/@{{acct.id}}"),
                        "referenceId": "read"
                    }
                ]
            }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let items = body["compositeResponse"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["httpStatusCode"], 201);
    assert_eq!(items[0]["referenceId"], "acct");
    let account_id = items[0]["body"]["id"].as_str().unwrap();
    assert_eq!(
        items[0]["httpHeaders"]["Location"],
        format!("{DATA}/sobjects/Account/{account_id}")
    );
    assert_eq!(items[1]["httpStatusCode"], 201);
    assert_eq!(items[2]["httpStatusCode"], 200);
    assert_eq!(items[2]["body"]["Name"], "Acme");
    assert_eq!(f.salesforce.records("Contact")[0]["AccountId"], account_id);
}

#[tokio::test]
async fn composite_all_or_none_rolls_back_on_any_failure() {
    let f = Fixture::new().await;
    f.create_account(json!({"Name": "Existing"})).await;
    let request = |all_or_none: bool| {
        json!({
            "allOrNone": all_or_none,
            "compositeRequest": [
                {
                    "method": "POST",
                    "url": format!("{DATA}/sobjects/Account/"),
                    "referenceId": "ok",
                    "body": {"Name": "Acme"}
                },
                {
                    "method": "POST",
                    "url": format!("{DATA}/sobjects/Opportunity/"),
                    "referenceId": "bad",
                    "body": {"Name": "No stage"}
                },
                {
                    "method": "POST",
                    "url": format!("{DATA}/sobjects/Account/"),
                    "referenceId": "after",
                    "body": {"Name": "Globex"}
                }
            ]
        })
    };
    let body: Value = f
        .send(Method::POST, "/composite", request(true))
        .await
        .json()
        .await
        .unwrap();
    let items = body["compositeResponse"].as_array().unwrap();
    let codes: Vec<&str> = items
        .iter()
        .map(|i| i["body"][0]["errorCode"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "PROCESSING_HALTED",
            "REQUIRED_FIELD_MISSING",
            "PROCESSING_HALTED"
        ]
    );
    assert!(items.iter().all(|i| i["httpStatusCode"] == 400));
    let names: Vec<Value> = f
        .salesforce
        .records("Account")
        .iter()
        .map(|a| a["Name"].clone())
        .collect();
    assert_eq!(names, [json!("Existing")]);
    assert!(f.salesforce.records("Opportunity").is_empty());

    // Without allOrNone the good subrequests stand.
    let body: Value = f
        .send(Method::POST, "/composite", request(false))
        .await
        .json()
        .await
        .unwrap();
    let statuses: Vec<&Value> = body["compositeResponse"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["httpStatusCode"])
        .collect();
    assert_eq!(statuses, [&json!(201), &json!(400), &json!(201)]);
    assert_eq!(f.salesforce.records("Account").len(), 3);
}

#[tokio::test]
async fn every_response_carries_the_limit_info() {
    let f = Fixture::new().await;
    let first = f.get(&format!("{DATA}/sobjects/Account/x")).await;
    assert_eq!(usage_of(&first), (1, 15_000));
    let anonymous = f
        .client
        .get(format!(
            "{}{DATA}/query?q=SELECT+Id+FROM+Account",
            f.salesforce.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(usage_of(&anonymous), (2, 15_000));
    let (status, error) = error_of(anonymous).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error["errorCode"], "INVALID_SESSION_ID");
    assert_eq!(f.salesforce.api_usage(), (2, 15_000));
}

#[tokio::test]
async fn usage_past_the_limit_is_request_limit_exceeded() {
    let f = Fixture::new().await;
    f.salesforce.set_api_usage(99, 100);
    let last = f.query("SELECT Id FROM Account").await;
    assert_eq!(last.status(), StatusCode::OK);
    assert_eq!(usage_of(&last), (100, 100));
    let refused = f.query("SELECT Id FROM Account").await;
    assert_eq!(usage_of(&refused), (101, 100));
    let (status, error) = error_of(refused).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["errorCode"], "REQUEST_LIMIT_EXCEEDED");
}

#[tokio::test]
async fn misbehaviours_answer_in_salesforce_shapes() {
    let f = Fixture::new().await;
    f.salesforce.misbehave(Misbehaviour::RateLimited {
        times: 1,
        retry_after_secs: 4,
    });
    f.salesforce
        .misbehave(Misbehaviour::ServerError { times: 1 });
    f.salesforce
        .misbehave(Misbehaviour::Unauthorized { times: 1 });
    f.salesforce.misbehave(Misbehaviour::Latency {
        times: 1,
        millis: 40,
    });

    let limited = f.query("SELECT Id FROM Account").await;
    assert_eq!(limited.headers()["retry-after"], "4");
    assert_eq!(usage_of(&limited), (1, 15_000));
    let (status, error) = error_of(limited).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error["errorCode"], "REQUEST_LIMIT_EXCEEDED");

    let failed = f.query("SELECT Id FROM Account").await;
    assert_eq!(usage_of(&failed), (2, 15_000));
    let (status, error) = error_of(failed).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error["errorCode"], "UNKNOWN_EXCEPTION");

    let refused = f.query("SELECT Id FROM Account").await;
    let (status, error) = error_of(refused).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error["errorCode"], "INVALID_SESSION_ID");

    let started = std::time::Instant::now();
    let slow = f.query("SELECT Id FROM Account").await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(40));
    assert_eq!(slow.status(), StatusCode::OK);

    let requests = f.salesforce.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[0].path, format!("{DATA}/query"));
    assert_eq!(
        requests[0].query.as_deref(),
        Some("q=SELECT+Id+FROM+Account")
    );
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test]
async fn upsert_values_are_percent_decoded_once() {
    let f = Fixture::new().await;
    let response = f
        .send(
            Method::PATCH,
            "/sobjects/Account/Junction_External_Id__c/HS%20100%2525",
            json!({"Name": "Spaced"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        f.salesforce.records("Account")[0]["Junction_External_Id__c"],
        "HS 100%25"
    );
}

#[tokio::test]
async fn composite_reference_to_a_failed_subrequest_is_halted() {
    let f = Fixture::new().await;
    let body: Value = f
        .send(
            Method::POST,
            "/composite",
            json!({
                "allOrNone": false,
                "compositeRequest": [
                    {
                        "method": "POST",
                        "url": format!("{DATA}/sobjects/Account/"),
                        "referenceId": "acct",
                        "body": {}
                    },
                    {
                        "method": "POST",
                        "url": format!("{DATA}/sobjects/Contact/"),
                        "referenceId": "contact",
                        "body": {"LastName": "Doe", "AccountId": "@{acct.id}"}
                    }
                ]
            }),
        )
        .await
        .json()
        .await
        .unwrap();
    let items = body["compositeResponse"].as_array().unwrap();
    assert_eq!(items[0]["body"][0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(items[1]["httpStatusCode"], 400);
    assert_eq!(items[1]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert!(f.salesforce.records("Contact").is_empty());
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let f = Fixture::new().await;
    f.salesforce.clone().shutdown().await;
    let refused = f
        .client
        .get(format!("{}{DATA}/query?q=x", f.salesforce.base_url()))
        .send()
        .await;
    assert!(refused.is_err());
}
