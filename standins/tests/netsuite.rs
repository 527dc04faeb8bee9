//! The NetSuite stand-in, driven over HTTP the way a connector would.

// The shared helpers below are test code too; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

use junction_standins::{Misbehaviour, NetsuiteStandin};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "oauth2-access-token";

struct Fixture {
    netsuite: NetsuiteStandin,
    client: Client,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture {
            netsuite: NetsuiteStandin::start(TOKEN).await.unwrap(),
            client: Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/services/rest/record/v1{path}", self.netsuite.base_url())
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(TOKEN)
    }

    async fn send(&self, method: Method, path: &str, body: Value) -> Response {
        self.request(method, path).json(&body).send().await.unwrap()
    }

    async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.unwrap()
    }

    /// Creates a customer and returns its id, read from `Location`.
    async fn create_customer(&self, name: &str) -> String {
        let response = self
            .send(Method::POST, "/customer", json!({"companyName": name}))
            .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        id_from_location(&response)
    }
}

fn id_from_location(response: &Response) -> String {
    let location = response.headers()["location"].to_str().unwrap();
    location.rsplit('/').next().unwrap().to_owned()
}

async fn error_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.oracle.resource+json; type=error"
    );
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn creates_reads_and_updates_a_customer() {
    let f = Fixture::new().await;
    let response = f
        .send(
            Method::POST,
            "/customer",
            json!({"companyName": "Acme Corp", "email": "ap@acme.example"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        response.headers()["location"],
        f.url("/customer/1001").as_str()
    );
    assert!(response.bytes().await.unwrap().is_empty());

    let customer: Value = f.get("/customer/1001").await.json().await.unwrap();
    assert_eq!(customer["id"], "1001");
    assert_eq!(customer["companyName"], "Acme Corp");
    assert_eq!(customer["links"][0]["rel"], "self");
    assert_eq!(
        customer["links"][0]["href"],
        f.url("/customer/1001").as_str()
    );

    let patched = f
        .send(
            Method::PATCH,
            "/customer/1001",
            json!({"email": "billing@acme.example"}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::NO_CONTENT);
    let customer = &f.netsuite.customers()[0];
    assert_eq!(customer["email"], "billing@acme.example");
    assert_eq!(customer["companyName"], "Acme Corp");
}

#[tokio::test]
async fn creates_a_job_under_a_customer() {
    let f = Fixture::new().await;
    let customer = f.create_customer("Acme Corp").await;
    let response = f
        .send(
            Method::POST,
            "/job",
            json!({"companyName": "Acme rollout", "parent": {"id": customer}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.headers()["location"], f.url("/job/2001").as_str());
    let job: Value = f.get("/job/2001").await.json().await.unwrap();
    assert_eq!(job["parent"]["id"], "1001");
    assert_eq!(f.netsuite.jobs().len(), 1);
}

#[tokio::test]
async fn upserts_by_external_id() {
    let f = Fixture::new().await;
    let created = f
        .send(
            Method::PUT,
            "/customer/eid:CRM-42",
            json!({"companyName": "Acme"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        created.headers()["location"],
        f.url("/customer/1001").as_str()
    );

    let updated = f
        .send(
            Method::PUT,
            "/customer/eid:CRM-42",
            json!({"companyName": "Acme Corp"}),
        )
        .await;
    assert_eq!(updated.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        updated.headers()["location"],
        f.url("/customer/1001").as_str()
    );

    let customers = f.netsuite.customers();
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0]["externalId"], "CRM-42");
    assert_eq!(customers[0]["companyName"], "Acme Corp");
    let by_eid: Value = f.get("/customer/eid:CRM-42").await.json().await.unwrap();
    assert_eq!(by_eid["id"], "1001");
}

#[tokio::test]
async fn a_synchronous_request_ignores_the_idempotency_key_as_netsuite_does() {
    let f = Fixture::new().await;
    let send = || {
        f.request(Method::POST, "/customer")
            .header(
                "X-NetSuite-Idempotency-Key",
                "8f1c2d3e-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
            )
            .json(&json!({"companyName": "Acme Corp"}))
            .send()
    };
    let first = send().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    assert_eq!(second.status(), StatusCode::NO_CONTENT);
    assert_ne!(first.headers()["location"], second.headers()["location"]);
    assert_eq!(
        f.netsuite.customers().len(),
        2,
        "the key does not make a synchronous create idempotent"
    );
}

#[tokio::test]
async fn an_asynchronous_request_runs_once_per_key_and_a_repeat_is_idempotency_error() {
    let f = Fixture::new().await;
    let key = "0b9cf7a2-64e1-4d0e-9f4a-7c3b2a1d0e9f";
    let send = || {
        f.request(Method::POST, "/invoice")
            .header("Prefer", "respond-async")
            .header("X-NetSuite-Idempotency-Key", key)
            .json(&json!({"entity": {"id": "1001"}, "item": {"items": [{"item": {"id": "7"}, "quantity": 1, "rate": 100}]}}))
            .send()
    };
    f.send(
        Method::POST,
        "/customer",
        json!({"companyName": "Acme Corp"}),
    )
    .await;
    let accepted = send().await.unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let job = accepted.headers()["location"].to_str().unwrap().to_owned();
    assert!(job.ends_with("/services/rest/async/v1/job/1"), "{job}");
    let (status, body) = error_of(send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["o:errorDetails"][0]["o:errorCode"],
        "IDEMPOTENCY_ERROR"
    );
    assert_eq!(f.netsuite.invoices().len(), 1);

    // The job has run; its result is the answer the synchronous request would have had.
    let http = reqwest::Client::new();
    let read = |url: String| http.get(url).bearer_auth(TOKEN).send();
    let status: Value = read(job.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(status["completed"], true);
    assert_eq!(status["progress"], "succeeded");
    let result = read(format!("{job}/task/1/result")).await.unwrap();
    assert_eq!(result.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        result.headers()["location"],
        f.url("/invoice/3001").as_str()
    );
}

#[tokio::test]
async fn an_upsert_by_external_id_retried_after_a_server_error_makes_one_record() {
    let f = Fixture::new().await;
    f.netsuite.misbehave(Misbehaviour::ServerError { times: 1 });
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = f
            .request(Method::PUT, "/customer/eid:CRM-7")
            .json(&json!({"companyName": "Acme Corp"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [500, 204, 204]);
    assert_eq!(f.netsuite.customers().len(), 1);
}

#[tokio::test]
async fn missing_required_field_is_400_user_error() {
    let f = Fixture::new().await;
    let (status, body) = error_of(
        f.send(Method::POST, "/customer", json!({"email": "x@y"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({
            "type": "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1",
            "title": "Bad Request",
            "status": 400,
            "o:errorDetails": [{
                "detail": "Please enter value(s) for: Company Name",
                "o:errorCode": "USER_ERROR",
                "o:errorPath": "companyName"
            }]
        })
    );
    assert!(f.netsuite.customers().is_empty());

    let bad_json = f
        .request(Method::POST, "/customer")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(bad_json).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["o:errorDetails"][0]["o:errorCode"], "USER_ERROR");
}

#[tokio::test]
async fn job_with_unknown_parent_is_invalid_key_or_ref() {
    let f = Fixture::new().await;
    let response = f
        .send(
            Method::POST,
            "/job",
            json!({"companyName": "Orphan", "parent": {"id": "999"}}),
        )
        .await;
    let (status, body) = error_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["o:errorDetails"][0]["o:errorCode"],
        "INVALID_KEY_OR_REF"
    );
    assert_eq!(body["o:errorDetails"][0]["o:errorPath"], "parent");
}

#[tokio::test]
async fn duplicate_external_id_is_dup_rcrd() {
    let f = Fixture::new().await;
    let body = json!({"companyName": "Acme", "externalId": "CRM-1"});
    assert_eq!(
        f.send(Method::POST, "/customer", body.clone())
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let (status, error) = error_of(f.send(Method::POST, "/customer", body).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["o:errorDetails"][0]["o:errorCode"], "DUP_RCRD");
    assert_eq!(f.netsuite.customers().len(), 1);
}

#[tokio::test]
async fn unknown_record_is_404_nonexistent_id() {
    let f = Fixture::new().await;
    for response in [
        f.get("/customer/4242").await,
        f.send(Method::PATCH, "/job/4242", json!({"companyName": "x"}))
            .await,
        f.get("/customer/eid:nobody").await,
    ] {
        let (status, body) = error_of(response).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["title"], "Not Found");
        assert_eq!(body["status"], 404);
        assert_eq!(body["o:errorDetails"][0]["o:errorCode"], "NONEXISTENT_ID");
    }
    let (status, _) = error_of(f.get("/vendor/1").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn requests_without_the_bearer_token_are_401_invalid_login() {
    let f = Fixture::new().await;
    let anonymous = f.client.get(f.url("/customer/1001")).send().await.unwrap();
    let wrong = f
        .client
        .get(f.url("/customer/1001"))
        .bearer_auth("expired")
        .send()
        .await
        .unwrap();
    for response in [anonymous, wrong] {
        let (status, body) = error_of(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["o:errorDetails"][0]["o:errorCode"], "INVALID_LOGIN");
        assert_eq!(
            body["type"],
            "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.2"
        );
    }
}

#[tokio::test]
async fn misbehaviours_answer_in_netsuite_shapes() {
    let f = Fixture::new().await;
    f.netsuite.misbehave(Misbehaviour::ServerError { times: 1 });
    f.netsuite.misbehave(Misbehaviour::RateLimited {
        times: 1,
        retry_after_secs: 3,
    });
    f.netsuite
        .misbehave(Misbehaviour::Unauthorized { times: 1 });
    f.netsuite.misbehave(Misbehaviour::Latency {
        times: 1,
        millis: 50,
    });

    let (status, body) = error_of(f.get("/customer/1").await).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["o:errorDetails"][0]["o:errorCode"], "UNEXPECTED_ERROR");

    let limited = f.get("/customer/1").await;
    assert_eq!(limited.headers()["retry-after"], "3");
    let (status, body) = error_of(limited).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        body["o:errorDetails"][0]["o:errorCode"],
        "CONCURRENCY_LIMIT_EXCEEDED"
    );

    let (status, body) = error_of(f.get("/customer/1").await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["o:errorDetails"][0]["o:errorCode"], "INVALID_LOGIN");

    let started = std::time::Instant::now();
    let slow = f
        .send(Method::POST, "/customer", json!({"companyName": "Slow"}))
        .await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(50));
    assert_eq!(slow.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn records_every_request() {
    let f = Fixture::new().await;
    f.request(Method::POST, "/customer")
        .header("X-NetSuite-Idempotency-Key", "k1")
        .json(&json!({"companyName": "Acme"}))
        .send()
        .await
        .unwrap();
    f.client.get(f.url("/customer/1001")).send().await.unwrap();
    let requests = f.netsuite.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/services/rest/record/v1/customer");
    assert_eq!(requests[0].header("X-NetSuite-Idempotency-Key"), Some("k1"));
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(requests[0].body_json().unwrap()["companyName"], "Acme");
    assert_eq!(requests[1].header("authorization"), None);
}

#[tokio::test]
async fn patches_by_external_id_and_refuses_a_put_by_internal_id() {
    let f = Fixture::new().await;
    f.send(
        Method::POST,
        "/customer",
        json!({"companyName": "Acme", "externalId": "CRM-7"}),
    )
    .await;
    let patched = f
        .send(
            Method::PATCH,
            "/customer/eid:CRM-7",
            json!({"phone": "555-0100"}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        patched.headers()["location"],
        f.url("/customer/1001").as_str()
    );
    assert_eq!(f.netsuite.customers()[0]["phone"], "555-0100");

    let (status, body) = error_of(
        f.send(Method::PUT, "/customer/4242", json!({"companyName": "X"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["o:errorDetails"][0]["o:errorCode"], "USER_ERROR");
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let f = Fixture::new().await;
    f.netsuite.clone().shutdown().await;
    assert!(f.client.get(f.url("/customer/1")).send().await.is_err());
}

#[tokio::test]
async fn invoices_bill_a_customer_and_a_job_with_lines() {
    let f = Fixture::new().await;
    f.send(Method::POST, "/customer", json!({"companyName": "Acme"}))
        .await;
    f.send(
        Method::POST,
        "/job",
        json!({"companyName": "Acme rollout", "parent": {"id": "1001"}}),
    )
    .await;
    let line = json!({"item": {"id": "501"}, "quantity": 12.5, "rate": 180.0, "description": "Consultant"});
    let created = f
        .send(
            Method::POST,
            "/invoice",
            json!({"entity": {"id": "1001"}, "job": {"id": "2001"}, "item": {"items": [line]}}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        created.headers()["location"],
        f.url("/invoice/3001").as_str()
    );
    let invoices = f.netsuite.invoices();
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0]["item"]["items"][0]["quantity"], 12.5);

    for (body, field) in [
        (
            json!({"entity": {"id": "9999"}, "item": {"items": [line]}}),
            "entity",
        ),
        (
            json!({"entity": {"id": "1001"}, "job": {"id": "1001"}, "item": {"items": [line]}}),
            "job",
        ),
        (
            json!({"entity": {"id": "1001"}, "item": {"items": []}}),
            "item",
        ),
        (
            json!({"entity": {"id": "1001"}, "item": {"items": [{"item": {"id": "501"}, "quantity": 0, "rate": 1}]}}),
            "item.items[0]",
        ),
    ] {
        let (status, error) = error_of(f.send(Method::POST, "/invoice", body).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(error["o:errorDetails"][0]["o:errorPath"], field, "{error}");
    }
    assert_eq!(f.netsuite.invoices().len(), 1);
}
