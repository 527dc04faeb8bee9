//! `POST /v1/webhooks/{connection}`: for each signature scheme, a correctly
//! signed webhook reaches the plugin and its events come back; a flipped
//! byte, a stale timestamp or a missing header is 401 and the plugin is not
//! called. Signatures are computed here with the `hmac` and `sha2` crates,
//! independently of the host's verifiers.
//!
//! The echo guest counts its `handle-webhook` calls in its key-value store
//! (`webhook-calls`); its `kv` operation reads the count back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use http::{Request, StatusCode};
use junction::config::{Config, Scope, Token};
use junction_api as api;
use junction_tests::{guests, runtime, test_limits};
use serde_json::{Value, json};
use sha2::Sha256;

const OPERATOR: &str = "operator-token-0123456789";
const PUBLIC_URL: &str = "https://junction.example.com";
const MAX_BODY: usize = 16 * 1024;

const HUBSPOT_SECRET: &str = "hubspot-client-secret-0d6c1e2f";
const STRIPE_SECRET: &str = "whsec_stripe-signing-secret-5b7a";
const STRIPE_OLD_SECRET: &str = "whsec_stripe-previous-secret-91c3";
const GITHUB_SECRET: &str = "github-webhook-secret-44e0f9";
const SLACK_SECRET: &str = "slack-signing-secret-8f742231b10e";
const GENERIC_SECRET: &str = "acme-webhook-secret-6a1d02";

/// A timestamp ten minutes old: outside every scheme's five-minute window.
const STALE: Duration = Duration::from_secs(600);

/// HMAC-SHA256 of the concatenated `parts`.
fn hmac(secret: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    for part in parts {
        Mac::update(&mut mac, part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn unix_millis(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH).unwrap().as_millis()
}

type Headers = Vec<(String, String)>;

fn headers(pairs: &[(&str, String)]) -> Headers {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.clone()))
        .collect()
}

/// Flips the lowest bit of the first byte of a hex signature.
fn flip_hex(hex_text: &str) -> String {
    let mut bytes = hex::decode(hex_text).unwrap();
    bytes[0] ^= 1;
    hex::encode(bytes)
}

/// Flips the lowest bit of the first byte of a base64 signature.
fn flip_base64(text: &str) -> String {
    let mut bytes = BASE64.decode(text).unwrap();
    bytes[0] ^= 1;
    BASE64.encode(bytes)
}

/// One signature scheme, as a sender implements it.
struct Case {
    /// The connection configured with this scheme.
    connection: &'static str,
    /// The request path and query the sender posts to.
    path: &'static str,
    secret: &'static str,
    /// Signs `body` as sent at `at`.
    sign: fn(path: &str, body: &[u8], at: SystemTime) -> Headers,
    /// The same headers with one byte of the signature flipped.
    flip_signature: fn(Headers) -> Headers,
    /// Whether the scheme signs a timestamp.
    timestamped: bool,
}

fn hubspot_sign(path: &str, body: &[u8], at: SystemTime) -> Headers {
    let timestamp = unix_millis(at).to_string();
    // HubSpot signs the full URL with `%3A` and friends decoded.
    let url = format!("{PUBLIC_URL}{path}").replace("%3A", ":");
    let signature = hmac(
        HUBSPOT_SECRET,
        &[b"POST", url.as_bytes(), body, timestamp.as_bytes()],
    );
    headers(&[
        ("X-HubSpot-Signature-v3", BASE64.encode(signature)),
        ("X-HubSpot-Request-Timestamp", timestamp),
    ])
}

fn stripe_signature(secret: &str, t: u64, body: &[u8]) -> String {
    hex::encode(hmac(secret, &[t.to_string().as_bytes(), b".", body]))
}

fn stripe_sign(_: &str, body: &[u8], at: SystemTime) -> Headers {
    let t = unix_secs(at);
    let v1 = stripe_signature(STRIPE_SECRET, t, body);
    headers(&[("Stripe-Signature", format!("t={t},v1={v1}"))])
}

fn github_sign(_: &str, body: &[u8], _: SystemTime) -> Headers {
    let signature = hex::encode(hmac(GITHUB_SECRET, &[body]));
    headers(&[("X-Hub-Signature-256", format!("sha256={signature}"))])
}

fn slack_sign(_: &str, body: &[u8], at: SystemTime) -> Headers {
    let ts = unix_secs(at).to_string();
    let signature = hex::encode(hmac(SLACK_SECRET, &[b"v0:", ts.as_bytes(), b":", body]));
    headers(&[
        ("X-Slack-Signature", format!("v0={signature}")),
        ("X-Slack-Request-Timestamp", ts),
    ])
}

fn generic_sign(_: &str, body: &[u8], _: SystemTime) -> Headers {
    let signature = hex::encode(hmac(GENERIC_SECRET, &[body]));
    headers(&[("X-Acme-Signature", format!("sha256={signature}"))])
}

/// Rewrites the value of header `name` with `f`.
fn rewrite(mut headers: Headers, name: &str, f: impl Fn(&str) -> String) -> Headers {
    for (n, v) in &mut headers {
        if n.eq_ignore_ascii_case(name) {
            *v = f(v);
        }
    }
    headers
}

fn flip_after(prefix: &'static str) -> impl Fn(&str) -> String {
    move |value| format!("{prefix}{}", flip_hex(value.strip_prefix(prefix).unwrap()))
}

const HUBSPOT: Case = Case {
    connection: "hubspot",
    path: "/v1/webhooks/hubspot?portalId=62515%3A1",
    secret: HUBSPOT_SECRET,
    sign: hubspot_sign,
    flip_signature: |h| rewrite(h, "x-hubspot-signature-v3", flip_base64),
    timestamped: true,
};

const STRIPE: Case = Case {
    connection: "stripe",
    path: "/v1/webhooks/stripe",
    secret: STRIPE_SECRET,
    sign: stripe_sign,
    flip_signature: |h| {
        rewrite(h, "stripe-signature", |v| {
            let (t, v1) = v.split_once(",v1=").unwrap();
            format!("{t},v1={}", flip_hex(v1))
        })
    },
    timestamped: true,
};

const GITHUB: Case = Case {
    connection: "github",
    path: "/v1/webhooks/github",
    secret: GITHUB_SECRET,
    sign: github_sign,
    flip_signature: |h| rewrite(h, "x-hub-signature-256", flip_after("sha256=")),
    timestamped: false,
};

const SLACK: Case = Case {
    connection: "slack",
    path: "/v1/webhooks/slack",
    secret: SLACK_SECRET,
    sign: slack_sign,
    flip_signature: |h| rewrite(h, "x-slack-signature", flip_after("v0=")),
    timestamped: true,
};

const GENERIC: Case = Case {
    connection: "generic",
    path: "/v1/webhooks/generic",
    secret: GENERIC_SECRET,
    sign: generic_sign,
    flip_signature: |h| rewrite(h, "x-acme-signature", flip_after("sha256=")),
    timestamped: false,
};

struct Hooks {
    app: Router,
}

async fn hooks() -> Hooks {
    let rt = runtime(test_limits()).await;
    rt.load_plugin(&guests::bytes(guests::ECHO)).await.unwrap();
    let config = {
        let mut config = Config::default();
        config.store.database = None;
        config.api.max_body_bytes = MAX_BODY;
        config.api.public_url = Some(format!("{PUBLIC_URL}/"));
        config.api.tokens = BTreeMap::from([(
            "ops".into(),
            Token {
                token: OPERATOR.into(),
                scope: Scope::Operator,
            },
        )]);
        config
    };
    config.validate().unwrap();
    let hooks = Hooks {
        app: api::router(rt, &config.api, config.flows.options()),
    };
    let generic = json!({"generic_hmac": {
        "header": "X-Acme-Signature", "prefix": "sha256=", "encoding": "hex"
    }});
    for (name, scheme, secret) in [
        ("hubspot", json!("hubspot_v3"), HUBSPOT_SECRET),
        ("stripe", json!("stripe"), STRIPE_SECRET),
        ("github", json!("github"), GITHUB_SECRET),
        ("slack", json!("slack"), SLACK_SECRET),
        ("generic", generic, GENERIC_SECRET),
    ] {
        let spec = json!({
            "plugin": "echo",
            "auth": {"type": "bearer", "token": format!("{secret}-outbound")},
            "webhook": {"scheme": scheme, "secret": secret},
        });
        let (status, body) = hooks.put_connection(name, spec).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = hooks
        .put_connection("no-webhooks", json!({"plugin": "echo"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    hooks
}

struct Answer {
    status: StatusCode,
    body: Value,
    text: String,
    headers: http::HeaderMap,
}

impl Hooks {
    async fn send(&self, request: Request<Body>) -> Answer {
        let answer = junction_tests::openapi::send(&self.app, request).await;
        let text = answer.text();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("answer is not JSON ({}): {text}", answer.status));
        Answer {
            status: answer.status,
            body,
            text,
            headers: answer.headers,
        }
    }

    async fn put_connection(&self, name: &str, spec: Value) -> (StatusCode, Value) {
        let request = Request::put(format!("/v1/connections/{name}"))
            .header("authorization", format!("Bearer {OPERATOR}"))
            .header("content-type", "application/json")
            .body(Body::from(spec.to_string()))
            .unwrap();
        let answer = self.send(request).await;
        (answer.status, answer.body)
    }

    /// Posts a webhook, without any bearer token.
    async fn webhook(&self, path: &str, headers: &Headers, body: &[u8]) -> Answer {
        let mut request = Request::post(path).header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        self.send(request.body(Body::from(body.to_vec())).unwrap())
            .await
    }

    /// How many times the echo plugin's `handle-webhook` ran on `connection`.
    async fn plugin_calls(&self, connection: &str) -> u64 {
        let request = Request::post(format!("/v1/connections/{connection}/operations/kv"))
            .header("authorization", format!("Bearer {OPERATOR}"))
            .body(Body::from(r#"{"get":"webhook-calls"}"#))
            .unwrap();
        let answer = self.send(request).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        answer.body["value"]
            .as_str()
            .map_or(0, |count| count.parse().unwrap())
    }
}

/// A 401 in the API's error shape that gives nothing away.
fn assert_refused(answer: &Answer, case: &Case, expect_in_message: &str, context: &str) {
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "{context}: {}",
        answer.text
    );
    assert_eq!(
        answer.body["error"]["code"], "invalid_signature",
        "{context}"
    );
    let message = answer.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(expect_in_message),
        "{context}: `{message}` should mention `{expect_in_message}`"
    );
    assert!(!answer.text.contains(case.secret), "{context}: {message}");
    // No bearer token would help a webhook.
    assert!(
        answer.headers.get("www-authenticate").is_none(),
        "{context}"
    );
}

fn event_body(case: &Case, n: u32) -> Vec<u8> {
    json!({
        "id": format!("evt-{}-{n}", case.connection),
        "type": "com.example.deal.updated",
        "subject": "deal/42",
        "time": "2026-02-03T04:05:06Z",
        "n": n,
    })
    .to_string()
    .into_bytes()
}

/// The whole story for one scheme.
async fn check_scheme(case: &Case) {
    let hooks = hooks().await;
    let now = SystemTime::now();
    let body = event_body(case, 1);
    let signed = (case.sign)(case.path, &body, now);

    // A valid signature: the plugin parses the body into one event.
    let answer = hooks.webhook(case.path, &signed, &body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let expected_data: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        answer.body,
        json!({"events": [{
            "specversion": "1.0",
            "datacontenttype": "application/json",
            "id": format!("evt-{}-1", case.connection),
            "type": "com.example.deal.updated",
            "source": format!("echo/{}", case.connection),
            "subject": "deal/42",
            "time": "2026-02-03T04:05:06Z",
            "data": expected_data,
        }]})
    );
    assert_eq!(hooks.plugin_calls(case.connection).await, 1);

    // One flipped byte in the body (still valid JSON: only the signature
    // can tell).
    let mut altered = body.clone();
    let digit = altered.iter().rposition(|&b| b == b'1').unwrap();
    altered[digit] = b'3';
    serde_json::from_slice::<Value>(&altered).unwrap();
    let answer = hooks.webhook(case.path, &signed, &altered).await;
    assert_refused(
        &answer,
        case,
        "signature does not match",
        "flipped body byte",
    );
    // The signature the host would have expected never appears.
    let expected = (case.sign)(case.path, &altered, now);
    for (_, value) in &expected {
        if value.len() > 20 {
            assert!(!answer.text.contains(value.as_str()), "{}", answer.text);
        }
    }

    // One flipped byte in the signature.
    let forged = (case.flip_signature)(signed.clone());
    assert_ne!(forged, signed);
    let answer = hooks.webhook(case.path, &forged, &body).await;
    assert_refused(
        &answer,
        case,
        "signature does not match",
        "flipped signature byte",
    );

    // A stale timestamp, correctly signed: a replay.
    if case.timestamped {
        for at in [now - STALE, now + STALE] {
            let replayed = (case.sign)(case.path, &body, at);
            let answer = hooks.webhook(case.path, &replayed, &body).await;
            assert_refused(&answer, case, "stale request", "stale timestamp");
        }
    }

    // Each header the scheme needs, missing in turn.
    for (missing, _) in &signed {
        let without: Headers = signed
            .iter()
            .filter(|(n, _)| n != missing)
            .cloned()
            .collect();
        let answer = hooks.webhook(case.path, &without, &body).await;
        assert_refused(
            &answer,
            case,
            &format!("missing {}", missing.to_ascii_lowercase()),
            &format!("missing {missing}"),
        );
    }
    let answer = hooks.webhook(case.path, &Vec::new(), &body).await;
    assert_refused(&answer, case, "missing", "no headers");

    // None of the refused requests reached the plugin.
    assert_eq!(hooks.plugin_calls(case.connection).await, 1);

    // The counter does count: another valid delivery is the second call.
    let body = event_body(case, 2);
    let signed = (case.sign)(case.path, &body, SystemTime::now());
    let answer = hooks.webhook(case.path, &signed, &body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["events"][0]["data"]["n"], 2);
    assert_eq!(hooks.plugin_calls(case.connection).await, 2);
}

#[tokio::test]
async fn hubspot_v3() {
    check_scheme(&HUBSPOT).await;
}

#[tokio::test]
async fn stripe() {
    check_scheme(&STRIPE).await;
}

#[tokio::test]
async fn github() {
    check_scheme(&GITHUB).await;
}

#[tokio::test]
async fn slack() {
    check_scheme(&SLACK).await;
}

#[tokio::test]
async fn generic_hmac() {
    check_scheme(&GENERIC).await;
}

#[tokio::test]
async fn stripe_accepts_either_v1_during_rotation() {
    let hooks = hooks().await;
    let body = event_body(&STRIPE, 1);
    let t = unix_secs(SystemTime::now());
    let ours = stripe_signature(STRIPE_SECRET, t, &body);
    let old = stripe_signature(STRIPE_OLD_SECRET, t, &body);
    for value in [
        format!("t={t},v1={old},v1={ours}"),
        format!("t={t},v1={ours},v1={old}"),
    ] {
        let signed = headers(&[("Stripe-Signature", value)]);
        let answer = hooks.webhook(STRIPE.path, &signed, &body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(answer.body["events"][0]["id"], "evt-stripe-1");
    }
    // Two signatures, neither made with this connection's secret.
    let stranger = stripe_signature("whsec_someone-else", t, &body);
    let signed = headers(&[("Stripe-Signature", format!("t={t},v1={old},v1={stranger}"))]);
    let answer = hooks.webhook(STRIPE.path, &signed, &body).await;
    assert_refused(
        &answer,
        &STRIPE,
        "signature does not match",
        "two foreign v1",
    );
    assert_eq!(hooks.plugin_calls("stripe").await, 2);
}

#[tokio::test]
async fn hubspot_signs_the_public_url() {
    let hooks = hooks().await;
    let body = event_body(&HUBSPOT, 1);
    // Signed for the address the host listens on rather than the public
    // URL senders use: refused.
    let timestamp = unix_millis(SystemTime::now()).to_string();
    let url = "http://127.0.0.1:8080/v1/webhooks/hubspot?portalId=62515:1";
    let signature = hmac(
        HUBSPOT_SECRET,
        &[b"POST", url.as_bytes(), &body, timestamp.as_bytes()],
    );
    let signed = headers(&[
        ("X-HubSpot-Signature-v3", BASE64.encode(signature)),
        ("X-HubSpot-Request-Timestamp", timestamp),
    ]);
    let answer = hooks.webhook(HUBSPOT.path, &signed, &body).await;
    assert_refused(&answer, &HUBSPOT, "signature does not match", "wrong URL");
    // Another query string than the one signed: refused.
    let signed = hubspot_sign(HUBSPOT.path, &body, SystemTime::now());
    let answer = hooks
        .webhook("/v1/webhooks/hubspot?portalId=62515%3A2", &signed, &body)
        .await;
    assert_refused(&answer, &HUBSPOT, "signature does not match", "other query");
    assert_eq!(hooks.plugin_calls("hubspot").await, 0);
}

#[tokio::test]
async fn unknown_unconfigured_oversized_and_unparseable() {
    let hooks = hooks().await;
    let body = event_body(&GITHUB, 1);
    let signed = github_sign("", &body, SystemTime::now());

    let answer = hooks.webhook("/v1/webhooks/nobody", &signed, &body).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text);
    assert_eq!(answer.body["error"]["code"], "not_found");
    assert!(answer.text.contains("nobody"), "{}", answer.text);

    // A connection without webhook settings cannot verify anything.
    let answer = hooks
        .webhook("/v1/webhooks/no-webhooks", &signed, &body)
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text);
    assert_eq!(answer.body["error"]["code"], "webhook_not_configured");
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no webhook settings"),
        "{}",
        answer.text
    );
    assert_eq!(hooks.plugin_calls("no-webhooks").await, 0);

    // The API's body cap applies, signed or not.
    let big = vec![b' '; MAX_BODY + 1];
    let signed_big = github_sign("", &big, SystemTime::now());
    let answer = hooks
        .webhook("/v1/webhooks/github", &signed_big, &big)
        .await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.text
    );
    assert_eq!(answer.body["error"]["code"], "payload_too_large");
    assert_eq!(hooks.plugin_calls("github").await, 0);

    // Correctly signed but not JSON: the plugin is called and says why not.
    let text = b"not json".to_vec();
    let signed_text = github_sign("", &text, SystemTime::now());
    let answer = hooks
        .webhook("/v1/webhooks/github", &signed_text, &text)
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.text
    );
    assert_eq!(answer.body["error"]["code"], "invalid_input");
    assert_eq!(hooks.plugin_calls("github").await, 1);

    // Only POST.
    let request = Request::get("/v1/webhooks/github")
        .body(Body::empty())
        .unwrap();
    let answer = hooks.send(request).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn webhook_secrets_are_never_shown() {
    let hooks = hooks().await;
    let (status, body) = hooks
        .put_connection(
            "github",
            json!({
                "plugin": "echo",
                "auth": {"type": "api_key", "header": "x-api-key", "value": "outbound-api-key-31337"},
                "webhook": {"scheme": "github", "secret": GITHUB_SECRET},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["webhook"], json!({"scheme": "github"}));
    assert_eq!(
        body["auth"],
        json!({"type": "api_key", "header": "x-api-key"})
    );
    let request = Request::get("/v1/connections")
        .header("authorization", format!("Bearer {OPERATOR}"))
        .body(Body::empty())
        .unwrap();
    let answer = hooks.send(request).await;
    assert_eq!(answer.status, StatusCode::OK);
    for secret in [
        HUBSPOT_SECRET,
        STRIPE_SECRET,
        GITHUB_SECRET,
        SLACK_SECRET,
        GENERIC_SECRET,
        "outbound-api-key-31337",
    ] {
        assert!(!answer.text.contains(secret), "{secret}: {}", answer.text);
        assert!(!body.to_string().contains(secret), "{secret}");
    }
    let generic = answer.body["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "generic")
        .unwrap();
    assert_eq!(
        generic["webhook"]["scheme"]["generic_hmac"]["header"],
        "X-Acme-Signature"
    );
}
