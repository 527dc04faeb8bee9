//! The proposal-tool stand-in, driven over HTTP, and its signed `proposal.accepted` webhook.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use junction_standins::proposal::API_PATH;
use junction_standins::{Misbehaviour, ProposalStandin, WEBHOOK_ATTEMPTS};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use support::{Receiver, closed_url, eventually, hmac_sha256};

const API_KEY: &str = "proposal-api-key";
const SECRET: &str = "shared-webhook-key";

struct Fixture {
    proposals: ProposalStandin,
    client: Client,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture {
            proposals: ProposalStandin::start(API_KEY).await.unwrap(),
            client: Client::new(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(
                method,
                format!("{}{API_PATH}{path}", self.proposals.base_url()),
            )
            .header("Authorization", format!("API-Key {API_KEY}"))
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        support::call(self.request(method, path), body).await
    }

    /// Creates a proposal for Acme and returns its id.
    async fn create(&self, name: &str) -> String {
        let (status, proposal) = self
            .call(
                Method::POST,
                "/proposals",
                Some(json!({
                    "name": name,
                    "recipients": [{"email": "cfo@acme.example", "first_name": "Wile", "last_name": "Coyote"}],
                    "grand_total": {"amount": 48000, "currency": "USD"},
                    "metadata": {"hubspot_deal_id": "9876543201"},
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{proposal}");
        proposal["id"].as_str().unwrap().to_owned()
    }

    async fn moved(&self, id: &str, action: &str) -> (StatusCode, Value) {
        self.call(Method::POST, &format!("/proposals/{id}/{action}"), None)
            .await
    }
}

async fn error_of(response: Response, status: StatusCode, kind: &str) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], kind, "{body}");
    body["detail"].clone()
}

#[tokio::test]
async fn creates_reads_and_pages_proposals() {
    let f = Fixture::new().await;
    let id = f.create("Acme rollout").await;
    f.create("Globex migration").await;
    f.create("Initech audit").await;

    let (status, proposal) = f.call(Method::GET, &format!("/proposals/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(proposal["status"], "proposal.draft");
    assert_eq!(
        proposal["metadata"],
        json!({"hubspot_deal_id": "9876543201"})
    );
    assert_eq!(
        proposal["grand_total"],
        json!({"amount": 48000.0, "currency": "USD"})
    );
    assert_eq!(proposal["recipients"][0]["email"], "cfo@acme.example");
    assert_eq!(proposal["date_accepted"], Value::Null);

    let (_, page) = f.call(Method::GET, "/proposals?count=2&page=2", None).await;
    let names: Vec<&str> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Initech audit"]);
    f.moved(&id, "send").await;
    let (_, sent) = f
        .call(Method::GET, "/proposals?status=proposal.sent", None)
        .await;
    assert_eq!(sent["results"].as_array().unwrap().len(), 1);
    assert_eq!(sent["results"][0]["id"], id.as_str());
    assert!(sent["results"][0]["date_sent"].is_string());

    let (status, missing) = f.call(Method::GET, "/proposals/prop_9999", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing,
        json!({"type": "request_error", "detail": "Not found."})
    );
    assert_eq!(f.proposals.proposals().len(), 3);
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field() {
    let f = Fixture::new().await;
    let recipients = json!([{"email": "a@b.example"}]);
    let cases = [
        (json!({"recipients": recipients}), "name"),
        (json!({"name": "x"}), "recipients"),
        (json!({"name": "x", "recipients": []}), "recipients"),
        (
            json!({"name": "x", "recipients": [{"email": "nope"}]}),
            "recipients[0].email",
        ),
        (
            json!({"name": "x", "recipients": [{"mail": "a@b.example"}]}),
            "recipients[0].mail",
        ),
        (
            json!({"name": "x", "recipients": recipients, "metadata": {"n": 1}}),
            "metadata.n",
        ),
        (
            json!({"name": "x", "recipients": recipients, "grand_total": {"amount": 1}}),
            "grand_total.currency",
        ),
    ];
    for (body, field) in cases {
        let response = f
            .request(Method::POST, "/proposals")
            .json(&body)
            .send()
            .await
            .unwrap();
        let detail = error_of(response, StatusCode::BAD_REQUEST, "request_error").await;
        assert!(detail[field][0].is_string(), "{body} -> {detail}");
    }
    let response = f
        .request(Method::POST, "/proposals")
        .body("[]")
        .send()
        .await
        .unwrap();
    let detail = error_of(response, StatusCode::BAD_REQUEST, "request_error").await;
    assert!(detail.is_string());
    let response = f
        .request(Method::GET, "/proposals?count=101")
        .send()
        .await
        .unwrap();
    let detail = error_of(response, StatusCode::BAD_REQUEST, "request_error").await;
    assert!(detail["count"][0].is_string());
    assert!(f.proposals.proposals().is_empty());
}

#[tokio::test]
async fn accepting_sends_a_signed_webhook_once() {
    let f = Fixture::new().await;
    let receiver = Receiver::start(&[]).await;
    f.proposals.subscribe_webhooks(receiver.url(), SECRET);
    let id = f.create("Acme rollout").await;

    // A draft cannot be accepted: it was never sent.
    let (status, refused) = f.moved(&id, "accept").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = refused["detail"]["status"][0].as_str().unwrap();
    assert!(
        message.contains("proposal.draft to proposal.accepted"),
        "{message}"
    );

    assert_eq!(f.moved(&id, "send").await.0, StatusCode::OK);
    let (status, accepted) = f.moved(&id, "accept").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(accepted["status"], "proposal.accepted");
    assert!(accepted["date_accepted"].is_string());

    let delivered = eventually("the webhook", || receiver.received().pop()).await;
    let signature = delivered.headers["x-proposal-signature"].clone();
    let expected = format!(
        "sha256={}",
        hex::encode(hmac_sha256(SECRET, &delivered.body))
    );
    assert_eq!(signature, expected);
    assert_ne!(
        signature,
        format!(
            "sha256={}",
            hex::encode(hmac_sha256("another key", &delivered.body))
        )
    );
    assert_eq!(delivered.headers["x-proposal-event"], "proposal.accepted");
    assert_eq!(delivered.headers["content-type"], "application/json");
    let event: Value = serde_json::from_slice(&delivered.body).unwrap();
    assert_eq!(event["event"], "proposal.accepted");
    assert!(event["event_id"].is_string());
    assert_eq!(event["data"], accepted);
    assert_eq!(event["data"]["metadata"]["hubspot_deal_id"], "9876543201");

    // Accepting again changes nothing and sends nothing; declining now is refused.
    let (status, again) = f.moved(&id, "accept").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, accepted);
    let (status, _) = f.moved(&id, "decline").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let attempts = f.proposals.webhooks();
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].delivered());
    assert_eq!(attempts[0].body.as_bytes(), delivered.body.as_slice());
    assert_eq!(
        attempts[0].header("X-Proposal-Signature"),
        Some(expected.as_str())
    );
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn webhooks_are_retried_until_taken_or_given_up() {
    let f = Fixture::new().await;
    let first = f.create("Acme rollout").await;
    let second = f.create("Globex migration").await;
    for id in [&first, &second] {
        f.moved(id, "send").await;
    }

    // Without a subscription nothing is sent.
    f.proposals.accept(&first).unwrap();
    assert!(f.proposals.webhooks().is_empty());

    let receiver = Receiver::start(&[503]).await;
    f.proposals.subscribe_webhooks(receiver.url(), SECRET);
    f.proposals.accept(&second).unwrap();
    let attempts = eventually("a delivery after a 503", || {
        let attempts = f.proposals.webhooks();
        (attempts.len() == 2).then_some(attempts)
    })
    .await;
    assert_eq!(attempts[0].status, Some(503));
    assert_eq!((attempts[1].attempt, attempts[1].status), (2, Some(200)));
    assert_eq!(attempts[0].body, attempts[1].body);
    assert_eq!(receiver.received().len(), 2);

    let third = f.create("Initech audit").await;
    f.moved(&third, "send").await;
    f.proposals.subscribe_webhooks(&closed_url().await, SECRET);
    f.proposals.accept(&third).unwrap();
    let given_up = eventually("every attempt to fail", || {
        let attempts = f.proposals.webhooks();
        (attempts.len() == 2 + WEBHOOK_ATTEMPTS as usize).then_some(attempts)
    })
    .await;
    for attempt in &given_up[2..] {
        assert!(!attempt.delivered());
        assert!(attempt.error.is_some());
    }
    let error = f.proposals.accept("prop_9999").unwrap_err();
    assert!(error.to_string().contains("no such proposal"), "{error}");
}

#[tokio::test]
async fn refuses_bad_keys_and_misbehaves_on_request() {
    let f = Fixture::new().await;
    let url = format!("{}{API_PATH}/proposals", f.proposals.base_url());
    let response = f
        .client
        .get(&url)
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    error_of(response, StatusCode::UNAUTHORIZED, "authentication_error").await;
    let response = f
        .client
        .get(&url)
        .header("Authorization", "API-Key wrong")
        .send()
        .await
        .unwrap();
    error_of(response, StatusCode::UNAUTHORIZED, "authentication_error").await;

    f.proposals.misbehave(Misbehaviour::RateLimited {
        times: 1,
        retry_after_secs: 3,
    });
    f.proposals
        .misbehave(Misbehaviour::ServerError { times: 1 });
    f.proposals
        .misbehave(Misbehaviour::Unauthorized { times: 1 });
    let get = || f.request(Method::GET, "/proposals").send();
    let limited = get().await.unwrap();
    assert_eq!(limited.headers()["retry-after"], "3");
    let detail = error_of(limited, StatusCode::TOO_MANY_REQUESTS, "request_error").await;
    assert_eq!(
        detail,
        "Request was throttled. Expected available in 3 seconds."
    );
    error_of(
        get().await.unwrap(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
    )
    .await;
    error_of(
        get().await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "authentication_error",
    )
    .await;
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    assert_eq!(f.proposals.requests().len(), 6);
}
