//! The OpenAPI document: it describes every route of the router (and only
//! those), with security, parameters and the error shape. That each answer
//! matches it is checked by the other API tests, through
//! `junction_tests::openapi::send`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use axum::body::Body;
use http::{Request, StatusCode};
use junction::config::Scope;
use junction_tests::openapi::{document, send, template_of};
use junction_tests::{runtime, test_limits};
use serde_json::Value;

const ADMIN: &str = "admin-token-0123456789";

async fn app() -> axum::Router {
    let rt = runtime(test_limits()).await;
    let config = junction_tests::config_with_token("admin", ADMIN, Scope::Admin);
    junction_api::router(rt, &config.api, config.flows.options())
}

/// Every documented operation, as (method, path template).
fn operations() -> Vec<(String, String)> {
    let mut all = Vec::new();
    for (path, item) in document()["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                all.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    all
}

#[test]
fn the_document_is_openapi_3_1_with_every_route() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented: Vec<String> = operations()
        .into_iter()
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    documented.sort();
    let mut expected = vec![
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /v1/openapi.json",
        "GET /v1/plugins",
        "POST /v1/plugins",
        "GET /v1/plugins/{name}",
        "POST /v1/plugins/{name}/versions/{version}/activate",
        "DELETE /v1/plugins/{name}/versions/{version}",
        "POST /v1/plugins/{name}/rollback",
        "GET /v1/audit",
        "GET /v1/kpis",
        "GET /v1/connections",
        "GET /v1/connections/{name}",
        "PUT /v1/connections/{name}",
        "POST /v1/connections/{name}/check",
        "POST /v1/connections/{name}/operations/{op}",
        "POST /v1/transforms/{plugin}/apply",
        "POST /v1/webhooks/{connection}",
        "GET /v1/flows",
        "GET /v1/flows/{name}",
        "PUT /v1/flows/{name}",
        "GET /v1/flows/{name}/versions/{version}",
        "POST /v1/flows/{name}/runs",
        "GET /v1/runs",
        "GET /v1/runs/{id}",
        "GET /v1/dead-letters",
        "POST /v1/dead-letters/replay",
        "DELETE /v1/dead-letters/{id}",
        "POST /v1/dead-letters/{id}/replay",
        "GET /v1/dead-letters/{id}/input-schema",
        "POST /v1/console/links",
        "GET /console",
        "GET /console/",
        "GET /console/assets/{file}",
        "GET /console/session",
        "POST /console/session",
        "DELETE /console/session",
        "GET /console/sign-in",
        "POST /v1/admin/reload",
        "GET /v1/events",
        "GET /v1/connections/{name}/circuit",
        "GET /v1/connections/{name}/streams/{stream}",
        "PUT /v1/connections/{name}/circuit",
        "POST /v1/runs/{id}/signals/{name}",
        "GET /v1/governance",
        "PUT /v1/governance",
        "GET /v1/xref/{entity}",
        "GET /v1/xref/{entity}/{key}",
        "PUT /v1/xref/{entity}/{key}/{system}",
        "DELETE /v1/xref/{entity}/{key}/{system}",
    ];
    expected.sort();
    assert_eq!(documented, expected);
}

/// The router is built from the documented handlers only (`routes!` in the
/// API's `openapi` module): a route added any other way would be served
/// without being in the document, so no other way may appear in the source.
#[test]
fn no_route_is_added_outside_the_document() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../host/api/src");
    let mut offenders = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        for (n, line) in source.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for undocumented in [
                ".route(",
                ".nest(",
                ".merge(",
                "Router::new(",
                ".route_service(",
            ] {
                if code.contains(undocumented) {
                    offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "routes added outside the OpenAPI document (mount handlers with `routes!` in openapi.rs): {offenders:#?}"
    );
}

/// Each documented operation reaches a handler: none falls through to the
/// router's `no such endpoint` or `method not allowed`.
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = app().await;
    for (method, template) in operations() {
        let path: String = template
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        assert_eq!(template_of(&path), Some(template.as_str()));
        let request = Request::builder()
            .method(method.as_str())
            .uri(&path)
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(Body::from("{}"))
            .unwrap();
        let answer = send(&app, request).await;
        assert_ne!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        if answer.status == StatusCode::NOT_FOUND {
            let body = answer.json();
            assert_ne!(
                body["error"]["message"], "no such endpoint",
                "{method} {path} is documented but not routed"
            );
        }
    }
}

#[tokio::test]
async fn the_host_serves_the_document() {
    let app = app().await;
    let answer = send(
        &app,
        Request::get("/v1/openapi.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(&answer.json(), document());
}

#[test]
fn security_parameters_and_errors_are_described() {
    let doc = document();
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["console_session"]["type"], "apiKey");
    assert_eq!(schemes["console_session"]["in"], "cookie");
    assert_eq!(schemes["console_session"]["name"], "junction_session");
    let scopes = ["read", "invoker", "operator", "admin"];
    for (method, template) in operations() {
        let op = &doc["paths"][&template][method.to_lowercase()];
        // The console's page, assets and sign-in are public; its session
        // endpoints take the session cookie (checked below).
        let console = template.starts_with("/console");
        let public =
            console || ["/healthz", "/readyz", "/v1/openapi.json"].contains(&template.as_str());
        if template == "/console/session" && method != "POST" {
            assert_eq!(
                op["security"],
                serde_json::json!([{"console_session": []}]),
                "{method} {template}"
            );
        }
        let security = op["security"].as_array();
        if template == "/v1/webhooks/{connection}" {
            // Authenticated by the signature: no bearer token, its headers described.
            assert_eq!(op["security"], serde_json::json!([{}]), "{template}");
            let headers: Vec<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "header")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            for h in [
                "X-HubSpot-Signature-v3",
                "Stripe-Signature",
                "X-Hub-Signature-256",
                "X-Slack-Signature",
                "traceparent",
            ] {
                assert!(headers.contains(&h), "{h} missing from {headers:?}");
            }
        } else if !public {
            let security =
                security.unwrap_or_else(|| panic!("{method} {template} has no security"));
            let bearer = security
                .iter()
                .find_map(|s| s.get("bearer"))
                .unwrap_or_else(|| panic!("{method} {template} needs no bearer token"));
            let scope = bearer[0].as_str().unwrap();
            assert!(
                scopes.contains(&scope),
                "{method} {template}: scope {scope}"
            );
            for status in ["401", "403"] {
                if template != "/metrics" || status == "401" {
                    assert!(
                        op["responses"].get(status).is_some(),
                        "{method} {template} lacks {status}"
                    );
                }
            }
        }
        // Each `{param}` of the template is a documented path parameter.
        for part in template.split('/').filter(|p| p.starts_with('{')) {
            let name = part.trim_matches(|c| c == '{' || c == '}');
            let documented = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p: &Value| p["in"] == "path" && p["name"] == name && p["required"] == true);
            assert!(
                documented,
                "{method} {template}: path parameter {name} undocumented"
            );
        }
    }
    // The error shape, with every stable code.
    let error = &doc["components"]["schemas"]["ErrorDetail"];
    assert_eq!(error["required"], serde_json::json!(["code", "message"]));
    let codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap();
    for code in [
        "unauthorized",
        "forbidden",
        "invalid_flow",
        "plugin_busy",
        "invalid_signature",
        "not_found",
    ] {
        assert!(codes.iter().any(|c| c == code), "{code} not in {codes:?}");
    }
    // Credentials are write-only: documented in requests, never in answers.
    let auth = serde_json::to_string(&doc["components"]["schemas"]["Auth"]).unwrap();
    assert!(auth.contains("\"writeOnly\":true"), "{auth}");
}

/// The check the API tests rely on refuses what the document does not describe.
#[test]
fn the_response_check_can_fail() {
    use junction_tests::openapi::check_response;
    let json = Some("application/json");
    // What the document describes passes.
    check_response("GET", "/v1/plugins", 200, json, br#"{"plugins": []}"#);
    check_response(
        "GET",
        "/v1/runs?flow=x",
        401,
        json,
        br#"{"error": {"code": "unauthorized", "message": "missing token"}}"#,
    );
    let refused = |method: &'static str, uri: &'static str, status: u16, body: &'static [u8]| {
        std::panic::catch_unwind(|| check_response(method, uri, status, json, body)).is_err()
    };
    assert!(
        refused("GET", "/v1/plugins", 200, br#"{"plugins": 5}"#),
        "wrong type"
    );
    assert!(
        refused("GET", "/v1/plugins", 200, br#"{}"#),
        "missing field"
    );
    assert!(
        refused("GET", "/v1/plugins", 418, br#"{}"#),
        "undocumented status"
    );
    assert!(
        refused(
            "GET",
            "/v1/runs",
            400,
            br#"{"error": {"code": "no_such_code", "message": "m"}}"#
        ),
        "unknown error code"
    );
    assert!(
        refused("GET", "/v1/nowhere", 200, br#"{}"#),
        "undocumented path"
    );
}
