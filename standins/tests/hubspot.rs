//! The HubSpot stand-in, driven over HTTP the way a connector would, and its signed webhooks.

// The shared helpers below are test code too; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use junction_standins::hubspot::{self, WebhookDelivery};
use junction_standins::{HubspotStandin, Misbehaviour};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use sha2_011::Sha256;

const TOKEN: &str = "pat-na1-11111111-2222-3333-4444-555555555555";

struct Fixture {
    hubspot: HubspotStandin,
    client: Client,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture {
            hubspot: HubspotStandin::start(TOKEN).await.unwrap(),
            client: Client::new(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.hubspot.base_url()))
            .bearer_auth(TOKEN)
    }

    async fn send(&self, method: Method, path: &str, body: Value) -> Response {
        self.request(method, path).json(&body).send().await.unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        let response = self.request(Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    async fn create_deal(&self, name: &str, stage: &str) -> Value {
        let response = self
            .send(
                Method::POST,
                "/crm/v3/objects/deals",
                json!({"properties": {"dealname": name, "dealstage": stage, "amount": "1500"}}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }
}

async fn error_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert!(
        body["correlationId"]
            .as_str()
            .is_some_and(|c| c.len() == 36)
    );
    assert!(body["message"].is_string());
    (status, body)
}

#[tokio::test]
async fn creates_reads_and_updates_a_deal() {
    let f = Fixture::new().await;
    let deal = f.create_deal("Acme rollout", "contractsent").await;
    let id = deal["id"].as_str().unwrap().to_owned();
    assert_eq!(deal["properties"]["dealname"], "Acme rollout");
    assert_eq!(deal["properties"]["hs_object_id"], id.as_str());
    assert_eq!(deal["properties"]["pipeline"], "default");
    assert_eq!(deal["archived"], false);
    assert!(deal["createdAt"].is_string());

    let read = f.get(&format!("/crm/v3/objects/deals/{id}")).await;
    assert_eq!(read["properties"]["amount"], "1500");
    let some = f
        .get(&format!(
            "/crm/v3/objects/deals/{id}?properties=dealstage,closedate"
        ))
        .await;
    assert_eq!(some["properties"]["dealstage"], "contractsent");
    assert_eq!(some["properties"]["closedate"], Value::Null);
    assert!(some["properties"].get("amount").is_none());

    let patched = f
        .send(
            Method::PATCH,
            &format!("/crm/v3/objects/deals/{id}"),
            json!({"properties": {"dealstage": "closedwon", "amount": 2000}}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(patched["properties"]["dealstage"], "closedwon");
    assert_eq!(patched["properties"]["amount"], "2000");
    assert_eq!(
        f.hubspot.deals()[0]["properties"]["dealname"],
        "Acme rollout"
    );
}

#[tokio::test]
async fn a_read_naming_no_properties_gets_the_default_set_and_repeated_names_are_read() {
    let f = Fixture::new().await;
    let response = f
        .send(
            Method::POST,
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "Euro rollout", "dealstage": "closedwon",
                "amount": "90000", "deal_currency_code": "EUR"}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    assert_eq!(
        created["properties"]["deal_currency_code"], "EUR",
        "a create answers what it set"
    );
    let id = created["id"].as_str().unwrap().to_owned();

    // As HubSpot: the default set has the amount but not its currency.
    let read = f.get(&format!("/crm/v3/objects/deals/{id}")).await;
    assert_eq!(read["properties"]["amount"], "90000");
    assert_eq!(read["properties"]["pipeline"], "default");
    assert!(
        read["properties"].get("deal_currency_code").is_none(),
        "{read:#}"
    );
    let listed = f.get("/crm/v3/objects/deals").await;
    assert!(
        listed["results"][0]["properties"]
            .get("deal_currency_code")
            .is_none()
    );

    // HubSpot's clients repeat the parameter; a comma list works too.
    let repeated = f
        .get(&format!(
            "/crm/v3/objects/deals/{id}?properties=amount&properties=deal_currency_code"
        ))
        .await;
    assert_eq!(repeated["properties"]["amount"], "90000");
    assert_eq!(repeated["properties"]["deal_currency_code"], "EUR");
    assert!(repeated["properties"].get("dealname").is_none());
    let listed = f
        .get("/crm/v3/objects/deals?properties=deal_currency_code&properties=dealname&limit=5")
        .await;
    assert_eq!(
        listed["results"][0]["properties"]["deal_currency_code"],
        "EUR"
    );

    // A malformed query is HubSpot's JSON validation error, not plain text.
    let bad = f
        .request(Method::GET, "/crm/v3/objects/deals?limit=many")
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["category"], "VALIDATION_ERROR", "{body:#}");
}

#[tokio::test]
async fn creates_companies() {
    let f = Fixture::new().await;
    let response = f
        .send(
            Method::POST,
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "Acme Corp", "domain": "acme.example"}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        f.hubspot.companies()[0]["properties"]["domain"],
        "acme.example"
    );
    assert!(f.hubspot.deals().is_empty());
}

#[tokio::test]
async fn list_paging_walks_every_object() {
    let f = Fixture::new().await;
    for n in 0..7 {
        f.create_deal(&format!("Deal {n}"), "qualifiedtobuy").await;
    }
    let mut names = Vec::new();
    let mut path = "/crm/v3/objects/deals?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let page = f.get(&path).await;
        pages += 1;
        for deal in page["results"].as_array().unwrap() {
            names.push(deal["properties"]["dealname"].as_str().unwrap().to_owned());
        }
        match page["paging"]["next"]["after"].as_str() {
            Some(after) => {
                let link = page["paging"]["next"]["link"].as_str().unwrap();
                assert!(link.ends_with(&format!("after={after}")));
                path = format!("/crm/v3/objects/deals?limit=3&after={after}");
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..7).map(|n| format!("Deal {n}")).collect();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn search_with_eq_filters_and_paging() {
    let f = Fixture::new().await;
    for n in 0..5 {
        f.create_deal(&format!("Won {n}"), "closedwon").await;
    }
    f.create_deal("Lost", "closedlost").await;
    f.create_deal("Open", "contractsent").await;

    let search = |after: Option<&str>| {
        let mut body = json!({
            "filterGroups": [{"filters": [
                {"propertyName": "dealstage", "operator": "EQ", "value": "closedwon"}
            ]}],
            "properties": ["dealname", "dealstage"],
            "limit": 2,
        });
        if let Some(after) = after {
            body["after"] = json!(after);
        }
        f.send(Method::POST, "/crm/v3/objects/deals/search", body)
    };
    let mut names = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page: Value = search(after.as_deref()).await.json().await.unwrap();
        assert_eq!(page["total"], 5);
        for deal in page["results"].as_array().unwrap() {
            assert_eq!(deal["properties"]["dealstage"], "closedwon");
            assert!(deal["properties"].get("amount").is_none());
            names.push(deal["properties"]["dealname"].as_str().unwrap().to_owned());
        }
        match page["paging"]["next"]["after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(names, ["Won 0", "Won 1", "Won 2", "Won 3", "Won 4"]);

    // Groups are ORed, filters within a group ANDed.
    let body = json!({"filterGroups": [
        {"filters": [{"propertyName": "dealstage", "operator": "EQ", "value": "closedlost"}]},
        {"filters": [
            {"propertyName": "dealstage", "operator": "EQ", "value": "contractsent"},
            {"propertyName": "dealname", "operator": "EQ", "value": "Open"}
        ]}
    ]});
    let page: Value = f
        .send(Method::POST, "/crm/v3/objects/deals/search", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 2);
    assert!(page.get("paging").is_none());

    let bad = json!({"filterGroups": [{"filters": [
        {"propertyName": "amount", "operator": "BETWEEN_FUZZY", "value": "1"}
    ]}]});
    let (status, body) = error_of(
        f.send(Method::POST, "/crm/v3/objects/deals/search", bad)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["category"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn batch_create_is_all_or_nothing_on_validation() {
    let f = Fixture::new().await;
    let response = f
        .send(
            Method::POST,
            "/crm/v3/objects/companies/batch/create",
            json!({"inputs": [
                {"properties": {"name": "Acme"}},
                {"properties": {"name": "Globex"}}
            ]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "COMPLETE");
    assert_eq!(body["results"].as_array().unwrap().len(), 2);
    assert!(body["startedAt"].is_string() && body["completedAt"].is_string());
    assert_eq!(f.hubspot.companies().len(), 2);

    let invalid = f
        .send(
            Method::POST,
            "/crm/v3/objects/deals/batch/create",
            json!({"inputs": [
                {"properties": {"dealname": "Fine", "dealstage": "closedwon"}},
                {"properties": {"dealname": "Bad stage", "dealstage": "won-ish"}}
            ]}),
        )
        .await;
    let (status, body) = error_of(invalid).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert!(f.hubspot.deals().is_empty());
}

#[tokio::test]
async fn validation_and_not_found_errors() {
    let f = Fixture::new().await;
    let (status, body) = error_of(
        f.send(
            Method::POST,
            "/crm/v3/objects/deals",
            json!({"properties": {"dealstage": "closedwon"}}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert!(body["message"].as_str().unwrap().contains("dealname"));

    let response = f
        .request(Method::GET, "/crm/v3/objects/deals/123")
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(response).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["category"], "OBJECT_NOT_FOUND");

    let (status, body) = error_of(
        f.send(
            Method::PATCH,
            "/crm/v3/objects/companies/9",
            json!({"properties": {}}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["category"], "OBJECT_NOT_FOUND");
}

#[tokio::test]
async fn requests_without_the_token_are_401() {
    let f = Fixture::new().await;
    let url = format!("{}/crm/v3/objects/deals", f.hubspot.base_url());
    let anonymous = f.client.get(&url).send().await.unwrap();
    let wrong = f
        .client
        .get(&url)
        .bearer_auth("pat-revoked")
        .send()
        .await
        .unwrap();
    for response in [anonymous, wrong] {
        let (status, body) = error_of(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    }
}

#[tokio::test]
async fn misbehaviours_answer_in_hubspot_shapes() {
    let f = Fixture::new().await;
    f.hubspot.misbehave(Misbehaviour::RateLimited {
        times: 1,
        retry_after_secs: 10,
    });
    f.hubspot.misbehave(Misbehaviour::ServerError { times: 1 });
    f.hubspot.misbehave(Misbehaviour::Unauthorized { times: 1 });

    let limited = f
        .request(Method::GET, "/crm/v3/objects/deals")
        .send()
        .await
        .unwrap();
    let headers = limited.headers().clone();
    assert_eq!(headers["retry-after"], "10");
    assert_eq!(headers["x-hubspot-ratelimit-max"], "190");
    assert_eq!(headers["x-hubspot-ratelimit-remaining"], "0");
    assert_eq!(
        headers["x-hubspot-ratelimit-interval-milliseconds"],
        "10000"
    );
    assert!(headers.contains_key("x-hubspot-ratelimit-daily-remaining"));
    let (status, body) = error_of(limited).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["category"], "RATE_LIMITS");
    assert_eq!(body["errorType"], "RATE_LIMIT");

    let failed = f
        .request(Method::GET, "/crm/v3/objects/deals")
        .send()
        .await
        .unwrap();
    let (status, _) = error_of(failed).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);

    let refused = f
        .request(Method::GET, "/crm/v3/objects/deals")
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(refused).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");

    assert_eq!(f.get("/crm/v3/objects/deals").await["results"], json!([]));
    assert_eq!(f.hubspot.requests().len(), 4);
    assert_eq!(f.hubspot.requests()[0].path, "/crm/v3/objects/deals");
}

/// HMAC-SHA256 over the v3 signing string, computed here rather than by the stand-in.
fn expected_signature(
    secret: &str,
    method: &str,
    uri: &str,
    body: &str,
    timestamp: &str,
) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{method}{uri}{body}{timestamp}").as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

#[test]
fn webhook_delivery_is_signed_with_signature_v3() {
    let secret = "client-secret-0f3e";
    let uri = "https://junction.example.com/v1/webhooks/hubspot?connection=crm";
    let event = hubspot::property_change_event("deal", 9_876_543_201, "dealstage", "closedwon");
    assert_eq!(event["subscriptionType"], "deal.propertyChange");
    assert_eq!(event["propertyName"], "dealstage");
    assert_eq!(event["propertyValue"], "closedwon");
    assert_eq!(event["objectId"], 9_876_543_201u64);
    assert_eq!(event["portalId"], hubspot::PORTAL_ID);

    let delivery: WebhookDelivery =
        hubspot::webhook_delivery(secret, uri, std::slice::from_ref(&event));
    assert_eq!(delivery.method, "POST");
    let body: Value = serde_json::from_str(&delivery.body).unwrap();
    assert_eq!(body, json!([event]));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(now_ms.abs_diff(delivery.timestamp_ms) < 60_000);

    let timestamp = delivery.timestamp_ms.to_string();
    let expected = expected_signature(secret, "POST", uri, &delivery.body, &timestamp);
    assert_eq!(delivery.signature, expected);
    let headers = delivery.headers();
    assert!(headers.contains(&("X-HubSpot-Signature-v3", expected)));
    assert!(headers.contains(&("X-HubSpot-Request-Timestamp", timestamp)));

    // Another secret gives another signature.
    assert_ne!(
        delivery.signature,
        expected_signature(
            "other",
            "POST",
            uri,
            &delivery.body,
            &delivery.timestamp_ms.to_string()
        )
    );
}

#[test]
fn signature_v3_decodes_the_listed_escapes_of_the_uri() {
    let delivery = hubspot::webhook_delivery_at(
        "s",
        "https://h.example/hook%3Fa%3Db",
        &[json!({"x": 1})],
        1_700_000_000_000,
    );
    assert_eq!(delivery.timestamp_ms, 1_700_000_000_000);
    // `%3F` is one of the escapes HubSpot decodes; `%3D` is not.
    let expected = expected_signature(
        "s",
        "POST",
        "https://h.example/hook?a%3Db",
        r#"[{"x":1}]"#,
        "1700000000000",
    );
    assert_eq!(delivery.signature, expected);
}

#[tokio::test]
async fn unknown_object_types_and_other_operators() {
    let f = Fixture::new().await;
    let (status, body) = error_of(
        f.send(
            Method::POST,
            "/crm/v3/objects/widgets",
            json!({"properties": {}}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["category"], "VALIDATION_ERROR");

    f.create_deal("With amount", "closedwon").await;
    f.send(
        Method::POST,
        "/crm/v3/objects/deals",
        json!({"properties": {"dealname": "No amount", "dealstage": "closedlost"}}),
    )
    .await;
    let names = |page: Value| -> Vec<String> {
        page["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["properties"]["dealname"].as_str().unwrap().to_owned())
            .collect()
    };
    let search = |filter: Value| {
        f.send(
            Method::POST,
            "/crm/v3/objects/deals/search",
            json!({"filterGroups": [{"filters": [filter]}], "properties": ["dealname"]}),
        )
    };
    let has_amount: Value = search(json!({"propertyName": "amount", "operator": "HAS_PROPERTY"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(has_amount), ["With amount"]);
    let not_won: Value =
        search(json!({"propertyName": "dealstage", "operator": "NEQ", "value": "closedwon"}))
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(names(not_won), ["No amount"]);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let f = Fixture::new().await;
    let clone = f.hubspot.clone();
    clone.shutdown().await;
    let refused = f
        .client
        .get(format!("{}/crm/v3/objects/deals", f.hubspot.base_url()))
        .send()
        .await;
    assert!(refused.is_err());
}
