//! The contract-tool stand-in, driven over HTTP, and its DocuSign-signed `contract.signed`
//! webhook.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use junction_standins::contract::{ACCOUNT_ID, API_PATH};
use junction_standins::{ContractStandin, Misbehaviour};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use support::{Receiver, eventually, hmac_sha256};

const TOKEN: &str = "contract-oauth-token";
const SECRET: &str = "connect-hmac-key";

struct Fixture {
    contracts: ContractStandin,
    client: Client,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture {
            contracts: ContractStandin::start(TOKEN).await.unwrap(),
            client: Client::new(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(
                method,
                format!("{}{API_PATH}{path}", self.contracts.base_url()),
            )
            .bearer_auth(TOKEN)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        support::call(self.request(method, path), body).await
    }

    /// Creates a contract about `reference` and returns its id.
    async fn create(&self, title: &str, reference: &str, status: &str) -> String {
        let (code, summary) = self
            .call(
                Method::POST,
                "/contracts",
                Some(json!({
                    "title": title,
                    "externalReference": reference,
                    "signers": [{"name": "Wile E. Coyote", "email": "cfo@acme.example"}],
                    "value": {"amount": 48000, "currency": "USD"},
                    "status": status,
                })),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{summary}");
        assert_eq!(summary["status"], status);
        summary["contractId"].as_str().unwrap().to_owned()
    }
}

async fn error_of(response: Response, status: StatusCode, code: &str) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorCode"], code, "{body}");
    body["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn creates_reads_and_pages_contracts() {
    let f = Fixture::new().await;
    let id = f.create("Acme MSA", "psa-project-1001", "created").await;
    f.create("Globex SOW", "psa-project-1002", "sent").await;
    f.create("Initech NDA", "psa-project-1003", "created").await;

    let (status, contract) = f.call(Method::GET, &format!("/contracts/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(contract["title"], "Acme MSA");
    assert_eq!(contract["externalReference"], "psa-project-1001");
    assert_eq!(contract["signers"][0]["recipientId"], "1");
    assert_eq!(contract["signers"][0]["status"], "created");
    assert_eq!(contract["uri"], format!("/contracts/{id}"));

    let (_, first) = f
        .call(Method::GET, "/contracts?start_position=0&count=2", None)
        .await;
    assert_eq!(first["contracts"].as_array().unwrap().len(), 2);
    assert_eq!(first["resultSetSize"], "2");
    assert_eq!(first["startPosition"], "0");
    assert_eq!(first["endPosition"], "1");
    assert_eq!(first["totalSetSize"], "3");
    let next = first["nextUri"].as_str().unwrap();
    assert_eq!(next, "/contracts?start_position=2&count=2");
    let (_, last) = f.call(Method::GET, next, None).await;
    assert_eq!(last["contracts"][0]["title"], "Initech NDA");
    assert_eq!(last["nextUri"], "");

    let (_, sent) = f.call(Method::GET, "/contracts?status=sent", None).await;
    assert_eq!(sent["totalSetSize"], "1");
    assert_eq!(sent["contracts"][0]["title"], "Globex SOW");
    assert!(sent["contracts"][0]["sentDateTime"].is_string());
    let (_, by_reference) = f
        .call(
            Method::GET,
            "/contracts?external_reference=psa-project-1003",
            None,
        )
        .await;
    assert_eq!(by_reference["contracts"][0]["title"], "Initech NDA");
    assert_eq!(f.contracts.contracts().len(), 3);
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_member() {
    let f = Fixture::new().await;
    let signers = json!([{"name": "A", "email": "a@b.example"}]);
    let cases = [
        (json!({"signers": signers}), "title"),
        (json!({"title": "x"}), "signers"),
        (
            json!({"title": "x", "signers": [{"name": "A", "email": "nope"}]}),
            "signers[0].email",
        ),
        (
            json!({"title": "x", "signers": [{"name": "A"}]}),
            "signers[0].email",
        ),
        (
            json!({"title": "x", "signers": signers, "status": "completed"}),
            "status",
        ),
        (
            json!({"title": "x", "signers": signers, "value": {"amount": "lots", "currency": "USD"}}),
            "value.amount",
        ),
    ];
    for (body, member) in cases {
        let response = f
            .request(Method::POST, "/contracts")
            .json(&body)
            .send()
            .await
            .unwrap();
        let message = error_of(
            response,
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST_PARAMETER",
        )
        .await;
        assert!(
            message.contains(&format!("{member}:")),
            "{body} -> {message}"
        );
    }
    let response = f
        .request(Method::POST, "/contracts")
        .body("nope")
        .send()
        .await
        .unwrap();
    error_of(response, StatusCode::BAD_REQUEST, "INVALID_REQUEST_BODY").await;

    let other_account = format!(
        "{}/restapi/v2.1/accounts/00000000-0000-0000-0000-000000000000/contracts",
        f.contracts.base_url()
    );
    let response = f
        .client
        .get(other_account)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    error_of(response, StatusCode::BAD_REQUEST, "USER_LACKS_MEMBERSHIP").await;
    let response = f
        .request(Method::GET, "/contracts/no-such-contract")
        .send()
        .await
        .unwrap();
    error_of(response, StatusCode::NOT_FOUND, "CONTRACT_DOES_NOT_EXIST").await;
    assert!(f.contracts.contracts().is_empty());
    assert!(API_PATH.ends_with(ACCOUNT_ID));
}

#[tokio::test]
async fn signing_sends_a_docusign_signed_webhook_with_the_reference() {
    let f = Fixture::new().await;
    let receiver = Receiver::start(&[]).await;
    f.contracts.subscribe_webhooks(receiver.url(), SECRET);
    let id = f.create("Acme MSA", "psa-project-1001", "created").await;
    let path = format!("/contracts/{id}");

    let (status, refused) = f.call(Method::POST, &format!("{path}/sign"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("created to completed")
    );
    let (status, refused) = f
        .call(Method::PUT, &path, Some(json!({"status": "completed"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");

    let (status, sent) = f
        .call(Method::PUT, &path, Some(json!({"status": "sent"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sent["signers"][0]["status"], "sent");
    let (status, signed) = f.call(Method::POST, &format!("{path}/sign"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(signed["status"], "completed");
    assert!(signed["completedDateTime"].is_string());
    assert_eq!(signed["signers"][0]["status"], "completed");
    assert_eq!(
        signed["signers"][0]["signedDateTime"],
        signed["completedDateTime"]
    );

    let delivered = eventually("the webhook", || receiver.received().pop()).await;
    let expected = BASE64.encode(hmac_sha256(SECRET, &delivered.body));
    assert_eq!(delivered.headers["x-docusign-signature-1"], expected);
    assert_eq!(delivered.headers["x-authorization-digest"], "HMACSHA256");
    assert_eq!(delivered.headers["x-docusign-accountid"], ACCOUNT_ID);
    let event: Value = serde_json::from_slice(&delivered.body).unwrap();
    assert_eq!(event["event"], "contract.signed");
    assert_eq!(event["data"]["contractId"], id.as_str());
    assert_eq!(event["data"]["externalReference"], "psa-project-1001");
    assert_eq!(event["data"]["accountId"], ACCOUNT_ID);
    assert_eq!(event["data"]["contractSummary"], signed);
    assert_eq!(event["uri"], format!("{API_PATH}/contracts/{id}"));

    // Signing again changes nothing and sends nothing; a completed contract cannot be voided.
    assert_eq!(f.contracts.sign(&id).unwrap(), signed);
    let (status, _) = f
        .call(
            Method::PUT,
            &path,
            Some(json!({"status": "voided", "voidedReason": "changed our minds"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let attempts = f.contracts.webhooks();
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].delivered());
    assert_eq!(attempts[0].event, "contract.signed");
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn voiding_needs_a_reason_and_sends_nothing() {
    let f = Fixture::new().await;
    let receiver = Receiver::start(&[]).await;
    f.contracts.subscribe_webhooks(receiver.url(), SECRET);
    let id = f.create("Globex SOW", "sf-006A000001", "sent").await;
    let path = format!("/contracts/{id}");
    let (status, refused) = f
        .call(Method::PUT, &path, Some(json!({"status": "voided"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("voidedReason")
    );
    let (status, voided) = f
        .call(
            Method::PUT,
            &path,
            Some(json!({"status": "voided", "voidedReason": "lost the deal"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(voided["voidedReason"], "lost the deal");
    assert!(voided["voidedDateTime"].is_string());
    let error = f.contracts.sign(&id).unwrap_err();
    assert!(error.to_string().contains("voided is final"), "{error}");
    assert!(f.contracts.webhooks().is_empty());
}

#[tokio::test]
async fn refuses_bad_tokens_and_misbehaves_on_request() {
    let f = Fixture::new().await;
    let url = format!("{}{API_PATH}/contracts", f.contracts.base_url());
    let response = f.client.get(&url).send().await.unwrap();
    error_of(
        response,
        StatusCode::UNAUTHORIZED,
        "AUTHORIZATION_INVALID_TOKEN",
    )
    .await;

    f.contracts.misbehave(Misbehaviour::RateLimited {
        times: 1,
        retry_after_secs: 30,
    });
    f.contracts
        .misbehave(Misbehaviour::ServerError { times: 1 });
    f.contracts
        .misbehave(Misbehaviour::Unauthorized { times: 1 });
    let get = || f.request(Method::GET, "/contracts").send();
    let limited = get().await.unwrap();
    assert_eq!(limited.headers()["retry-after"], "30");
    assert_eq!(limited.headers()["x-ratelimit-limit"], "3000");
    assert_eq!(limited.headers()["x-ratelimit-remaining"], "0");
    assert!(limited.headers().contains_key("x-ratelimit-reset"));
    error_of(
        limited,
        StatusCode::TOO_MANY_REQUESTS,
        "HOURLY_APIINVOCATION_LIMIT_EXCEEDED",
    )
    .await;
    error_of(
        get().await.unwrap(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "UNSPECIFIED_ERROR",
    )
    .await;
    error_of(
        get().await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "AUTHORIZATION_INVALID_TOKEN",
    )
    .await;
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    assert_eq!(f.contracts.requests().len(), 5);
}
