//! The `/v1` API: authentication, scopes, and each error status, with the
//! Jira connector against the Jira Cloud stand-in.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use junction::config::{Config, Scope, Token};
use junction_api as api;
use junction_standins::{JiraStandin, Misbehaviour};
use junction_tests::{guests, runtime, test_limits};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789";
const READER: &str = "reader-token-0123456789";
const INVOKER: &str = "invoker-token-0123456789";

struct Api {
    app: Router,
    jira: JiraStandin,
}

async fn api() -> Api {
    let rt = runtime(test_limits()).await;
    rt.load_plugin(junction::shipped::JIRA_CONNECTOR)
        .await
        .unwrap();
    rt.load_plugin(junction::shipped::HUBSPOT_DEAL_TO_PROJECT)
        .await
        .unwrap();
    rt.load_plugin(&guests::bytes(guests::HOSTILE))
        .await
        .unwrap();
    let token = |t: &str, scope| Token {
        token: t.into(),
        scope,
    };
    let config = {
        let mut config = Config::default();
        config.store.database = None;
        config.api.max_body_bytes = 64 * 1024;
        config.api.tokens = BTreeMap::from([
            ("admin".into(), token(ADMIN, Scope::Admin)),
            ("reader".into(), token(READER, Scope::Read)),
            ("invoker".into(), token(INVOKER, Scope::Invoker)),
        ]);
        config
    };
    let jira = JiraStandin::start("ops@acme.example", "jira-api-token")
        .await
        .unwrap();
    let app = api::router(rt, &config.api, config.flows.options());
    let api = Api { app, jira };
    let (status, _) = api
        .call(
            "PUT",
            "/v1/connections/jira",
            Some(ADMIN),
            Some(api.jira_spec("jira-api-token")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = api
        .call(
            "PUT",
            "/v1/connections/hostile",
            Some(ADMIN),
            Some(json!({"plugin": "hostile"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    api
}

impl Api {
    fn jira_spec(&self, password: &str) -> Value {
        json!({
            "plugin": "jira",
            "config": {"base_url": self.jira.base_url()},
            "auth": {"type": "basic", "username": "ops@acme.example", "password": password},
            "allowed_hosts": [self.jira.host()], "private_hosts": [self.jira.host()],
        })
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.raw(method, uri, token, body).await
    }

    async fn raw(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: String,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let answer = junction_tests::openapi::send(&self.app, request).await;
        let status = answer.status;
        let retry_after = answer.headers.get("retry-after").cloned();
        let bytes = answer.body;
        let mut value: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{method} {uri}: body is not JSON: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        if let Some(r) = retry_after {
            value["_retry_after"] = json!(r.to_str().unwrap());
        }
        (status, value)
    }
}

/// Every error body has the one shape.
fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn health_needs_no_token() {
    let api = api().await;
    let (status, body) = api.call("GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let (status, _) = api.call("GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn missing_or_unknown_token_is_401_and_wrong_scope_is_403() {
    let api = api().await;
    let (status, body) = api.call("GET", "/v1/plugins", None, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = api
        .call("GET", "/v1/plugins", Some("not-a-real-token-at-all"), None)
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    let (status, body) = api.call("GET", "/v1/plugins", Some(READER), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["plugins"].as_array().unwrap().len(), 3);

    // A reader cannot invoke; an invoker cannot change connections.
    let (status, body) = api
        .call(
            "POST",
            "/v1/connections/jira/operations/get-issue",
            Some(READER),
            Some(json!({"key": "X-1"})),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let spec = api.jira_spec("x");
    let (status, body) = api
        .call("PUT", "/v1/connections/other", Some(INVOKER), Some(spec))
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    // Nothing was created by the refused call.
    let (_, body) = api.call("GET", "/v1/connections", Some(READER), None).await;
    let names: Vec<&str> = body["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hostile", "jira"]);
}

#[tokio::test]
async fn connections_never_show_secrets() {
    let api = api().await;
    let (status, body) = api.call("GET", "/v1/connections", Some(READER), None).await;
    assert_eq!(status, StatusCode::OK);
    let text = body.to_string();
    assert!(!text.contains("jira-api-token"), "{text}");
    // The kind and the fields that are not secret; never the password.
    assert_eq!(
        body["connections"][1]["auth"],
        json!({"type": "basic", "username": "ops@acme.example"})
    );
}

#[tokio::test]
async fn quote_to_jira_through_the_api() {
    let api = api().await;
    let (status, body) = api
        .call("POST", "/v1/connections/jira/check", Some(INVOKER), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = api
        .call(
            "POST",
            "/v1/connections/jira/operations/create-project",
            Some(INVOKER),
            Some(json!({"key": "ACME", "name": "Acme rollout"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["key"], "ACME");
    let (status, body) = api
        .call(
            "POST",
            "/v1/connections/jira/operations/create-issue",
            Some(INVOKER),
            Some(json!({"project_key": "ACME", "summary": "Kickoff", "description": "Agenda: scope"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["key"], "ACME-1");
    let (status, body) = api
        .call(
            "POST",
            "/v1/connections/jira/operations/get-issue",
            Some(INVOKER),
            Some(json!({"key": "ACME-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["summary"], "Kickoff");
    assert_eq!(body["description"], "Agenda: scope");

    // What Jira itself holds: the ADF description and the host's credentials on every request.
    let issues = api.jira.issues();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0]["fields"]["description"]["type"], "doc");
    assert!(api.jira.requests().iter().all(|r| {
        r.headers
            .iter()
            .any(|(k, v)| k == "authorization" && v.starts_with("Basic "))
    }));
}

#[tokio::test]
async fn transform_applies_through_the_api() {
    let api = api().await;
    let deal = json!({
        "id": "42",
        "properties": {"dealname": "Globex Migration", "amount": "50000", "dealstage": "closedwon",
                        "closedate": "2026-12-01T00:00:00.000Z", "pipeline": "default"},
        "archived": false
    });
    let (status, body) = api
        .call(
            "POST",
            "/v1/transforms/hubspot-deal-to-project/apply",
            Some(INVOKER),
            Some(deal),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let project = &body["outputs"][0];
    assert_eq!(project["name"], "Globex Migration");
    assert_eq!(project["external_ids"]["hubspot"], "42");
    assert_eq!(project["start_date"], "2026-12-01");

    let (status, body) = api
        .call(
            "POST",
            "/v1/transforms/jira/apply",
            Some(INVOKER),
            Some(json!({})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "wrong_plugin_kind");
}

#[tokio::test]
async fn each_error_status() {
    let api = api().await;
    let op = |name: &str| format!("/v1/connections/jira/operations/{name}");

    // 400: the body is not JSON.
    let (status, body) = api
        .raw("POST", &op("get-issue"), Some(INVOKER), "{not json".into())
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_json");
    // 404: unknown connection, unknown operation, unknown endpoint, remote object missing.
    let (status, body) = api
        .call(
            "POST",
            "/v1/connections/nope/operations/x",
            Some(INVOKER),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = api
        .call("POST", &op("delete-everything"), Some(INVOKER), None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("create-issue")
    );
    let (status, body) = api
        .call("GET", "/v1/nothing-here", Some(INVOKER), None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = api
        .call(
            "POST",
            &op("get-issue"),
            Some(INVOKER),
            Some(json!({"key": "NOPE-9"})),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "upstream_not_found");
    // 405.
    let (status, body) = api.call("DELETE", "/v1/plugins", Some(ADMIN), None).await;
    assert_error(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    // 409: the project key is taken.
    let project = json!({"key": "DUP", "name": "Duplicate"});
    let (status, _) = api
        .call(
            "POST",
            &op("create-project"),
            Some(INVOKER),
            Some(project.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api
        .call("POST", &op("create-project"), Some(INVOKER), Some(project))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    // 413: larger than the body limit.
    let big = json!({"key": "x".repeat(100 * 1024)});
    let (status, body) = api
        .call("POST", &op("get-issue"), Some(INVOKER), Some(big))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    // 422: Jira refused the input (no summary); a connection naming an unknown plugin.
    let (status, body) = api
        .call(
            "POST",
            &op("create-issue"),
            Some(INVOKER),
            Some(json!({"project_key": "DUP", "summary": ""})),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    );
    let (status, body) = api
        .call(
            "PUT",
            "/v1/connections/x",
            Some(ADMIN),
            Some(json!({"plugin": "salesforce"})),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_connection",
    );
    let (status, body) = api
        .call(
            "PUT",
            "/v1/connections/x",
            Some(ADMIN),
            Some(json!({"plugin": "jira", "allowed_hosts": ["https://a/b"]})),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_connection",
    );
    // 429 with Retry-After: Jira rate-limits.
    api.jira.misbehave(Misbehaviour::RateLimited {
        times: 1,
        retry_after_secs: 7,
    });
    let (status, body) = api
        .call(
            "POST",
            &op("get-issue"),
            Some(INVOKER),
            Some(json!({"key": "DUP-1"})),
        )
        .await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(body["_retry_after"], "7");
    // The host now holds the connection back for those 7 s: the next call is
    // refused by the host, and Jira is not asked.
    let asked = api.jira.requests().len();
    let (status, body) = api
        .call(
            "POST",
            &op("get-issue"),
            Some(INVOKER),
            Some(json!({"key": "DUP-1"})),
        )
        .await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(api.jira.requests().len(), asked);
    // Changing the connection starts it afresh.
    let (status, _) = api
        .call(
            "PUT",
            "/v1/connections/jira",
            Some(ADMIN),
            Some(api.jira_spec("jira-api-token")),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // 503: Jira fails.
    api.jira.misbehave(Misbehaviour::ServerError { times: 1 });
    let (status, body) = api
        .call(
            "POST",
            &op("get-issue"),
            Some(INVOKER),
            Some(json!({"key": "DUP-1"})),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "upstream_unavailable",
    );
    // 502: Jira refuses the host's credentials.
    let (status, _) = api
        .call(
            "PUT",
            "/v1/connections/jira",
            Some(ADMIN),
            Some(api.jira_spec("wrong-token")),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api
        .call("POST", "/v1/connections/jira/check", Some(INVOKER), None)
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_GATEWAY,
        "upstream_unauthorized",
    );
    // 403: the egress policy refuses the request (no grant for the stand-in's
    // loopback address), and the answer names the setting, not the plugin.
    let mut spec = api.jira_spec("jira-api-token");
    spec["private_hosts"] = json!([]);
    let (status, _) = api
        .call("PUT", "/v1/connections/jira", Some(ADMIN), Some(spec))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api
        .call("POST", "/v1/connections/jira/check", Some(INVOKER), None)
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "egress_denied");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("`private_hosts`"), "{body}");
    // 502 / 504: the plugin crashes or runs out of time.
    let (status, body) = api
        .call(
            "POST",
            "/v1/connections/hostile/operations/panic",
            Some(INVOKER),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_GATEWAY, "plugin_trapped");
    let (status, body) = api
        .call(
            "POST",
            "/v1/connections/hostile/operations/loop",
            Some(INVOKER),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::GATEWAY_TIMEOUT, "plugin_timeout");
}
