//! The console's sessions over plain HTTP, as a browser would hold them:
//! the cookie's attributes, CSRF on every change, scopes as the token's,
//! one-time links, sign-out on the server, and the page's security headers.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use junction::shipped;
use junction_tests::shipped_host::{self, ADMIN, Host, VIEWER};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A signed-in session: its cookie and CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

async fn sign_in(host: &Host, token: &str) -> (Session, reqwest::header::HeaderValue) {
    let answer = host
        .http
        .post(format!("{}/console/session", host.base))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let set_cookie = answer.headers()["set-cookie"].clone();
    let cookie = set_cookie
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let body: Value = answer.json().await.unwrap();
    let session = Session {
        cookie,
        csrf: body["csrf"].as_str().unwrap().to_string(),
    };
    (session, set_cookie)
}

async fn send(
    host: &Host,
    method: &str,
    path: &str,
    session: &Session,
    csrf: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = host
        .http
        .request(method.parse().unwrap(), format!("{}{path}", host.base))
        .header("cookie", &session.cookie);
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/toml")
            .body(body.to_string());
    }
    let answer = request.send().await.unwrap();
    let status = answer.status();
    let text = answer.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_acts_as_its_token_and_every_change_needs_its_csrf_token() {
    let host = shipped_host::host().await;

    // A wrong token opens nothing, and says so.
    let refused = host
        .http
        .post(format!("{}/console/session", host.base))
        .json(&json!({ "token": "not-a-token-of-this-host" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers().get("set-cookie").is_none());

    // Another site's page cannot sign its visitors in: not with a form
    // (no JSON), not with a script (its Origin).
    let form = host
        .http
        .post(format!("{}/console/session", host.base))
        .header("content-type", "text/plain")
        .body(json!({ "token": ADMIN }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(form.headers().get("set-cookie").is_none());
    let elsewhere = host
        .http
        .post(format!("{}/console/session", host.base))
        .header("origin", "https://attacker.example")
        .json(&json!({ "token": ADMIN }))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN);
    assert!(elsewhere.headers().get("set-cookie").is_none());

    let (admin, set_cookie) = sign_in(&host, ADMIN).await;
    let attributes = set_cookie.to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(attributes.contains(attribute), "{attributes}");
    }
    assert!(
        !attributes.contains("Secure"),
        "plain http has no Secure cookie: {attributes}"
    );
    let (status, me) = send(&host, "GET", "/console/session", &admin, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["name"], "admin");
    assert_eq!(me["scope"], "admin");

    // Reads need the cookie only; changes its CSRF token too.
    let (status, _) = send(&host, "GET", "/v1/runs", &admin, None, None).await;
    assert_eq!(status, StatusCode::OK);
    let governance = Some(shipped::GOVERNANCE);
    for csrf in [None, Some("forged"), Some("")] {
        let (status, body) = send(&host, "PUT", "/v1/governance", &admin, csrf, governance).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{csrf:?}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("X-CSRF-Token")
        );
    }
    let csrf = admin.csrf.clone();
    let (status, body) = send(
        &host,
        "PUT",
        "/v1/governance",
        &admin,
        Some(&csrf),
        governance,
    )
    .await;
    assert!(status.is_success(), "{status} {body}");
    let audit = host
        .call("GET", "/v1/audit?action=console.sign_in", None)
        .await;
    assert_eq!(audit["entries"][0]["actor"], "admin", "{audit:#}");

    // A read token's session reads, and its change is refused by scope,
    // with its own valid CSRF token.
    let (viewer, _) = sign_in(&host, VIEWER).await;
    let (status, _) = send(&host, "GET", "/v1/flows", &viewer, None, None).await;
    assert_eq!(status, StatusCode::OK);
    let csrf = viewer.csrf.clone();
    let (status, body) = send(
        &host,
        "PUT",
        "/v1/governance",
        &viewer,
        Some(&csrf),
        governance,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scope `read`"),
        "{body}"
    );

    // Sign-out needs the CSRF token, then ends the session on the server.
    let (status, _) = send(&host, "DELETE", "/console/session", &admin, None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let csrf = admin.csrf.clone();
    let (status, _) = send(
        &host,
        "DELETE",
        "/console/session",
        &admin,
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(&host, "GET", "/v1/runs", &admin, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(&host, "GET", "/console/session", &admin, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(&host, "GET", "/v1/runs", &viewer, None, None).await;
    assert_eq!(status, StatusCode::OK, "another session lives on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_link_opens_one_session_and_the_page_is_locked_down() {
    let host = shipped_host::host().await;
    let url = host.console_link(VIEWER).await;
    assert!(
        url.starts_with(&format!("{}/console/sign-in?code=", host.base)),
        "{url}"
    );
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let first = no_redirects.get(&url).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert_eq!(first.headers()["location"], "/console/");
    assert_eq!(first.headers()["referrer-policy"], "no-referrer");
    let cookie = first.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let me: Value = host
        .http
        .get(format!("{}/console/session", host.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "viewer");
    assert_eq!(me["scope"], "read");
    let again = no_redirects.get(&url).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(again.headers()["location"], "/console/?link=refused");
    assert!(
        again.headers().get("set-cookie").is_none(),
        "a spent link signs nobody in"
    );

    // The page and its scripts come from the binary, under a strict policy.
    let page = host
        .http
        .get(format!("{}/console/", host.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let etag = page.headers()["etag"].clone();
    let html = page.text().await.unwrap();
    assert!(html.contains("/console/assets/app.js"), "{html}");
    let cached = host
        .http
        .get(format!("{}/console/", host.base))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    let script = host
        .http
        .get(format!("{}/console/assets/app.js", host.base))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let missing = host
        .http
        .get(format!("{}/console/assets/../../junction.toml", host.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

/// What the console's connection form sends: the settings without the
/// secrets it never saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_edited_without_its_secrets_keeps_them() {
    let host = shipped_host::host().await;
    let (_, mut spec) = host
        .estate
        .connections()
        .into_iter()
        .find(|(name, _)| *name == "hubspot")
        .unwrap();
    spec["auth"].as_object_mut().unwrap().remove("token");
    spec["webhook"].as_object_mut().unwrap().remove("secret");
    spec["rate_limit"] = json!({"requests": 50, "per_seconds": 1});
    let edited = host
        .call("PUT", "/v1/connections/hubspot", Some(spec.clone()))
        .await;
    assert_eq!(edited["auth"]["type"], "bearer", "{edited:#}");
    let check = host
        .call("POST", "/v1/connections/hubspot/check", None)
        .await;
    assert_eq!(
        check["status"], "ok",
        "the stored token still signs the requests"
    );
    // The deal webhook still verifies with the stored secret.
    let run = host.deal_won().await;
    assert_eq!(host.finished(&run).await["status"], "completed");

    // Another kind of credentials without its secret is refused, and
    // nothing changes.
    spec["auth"] = json!({"type": "api_key", "header": "X-Key"});
    let (status, body) = host
        .send("PUT", "/v1/connections/hubspot", Some(spec))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("value"),
        "{body}"
    );
    let check = host
        .call("POST", "/v1/connections/hubspot/check", None)
        .await;
    assert_eq!(check["status"], "ok");
    let health = host
        .call("GET", "/v1/connections/hubspot/circuit", None)
        .await;
    assert_eq!(health["last_check_ok"], true, "{health:#}");
    assert!(health["last_check_at"].is_string(), "{health:#}");

    // A check that fails is what the console's health shows next.
    let (_, mut spec) = host
        .estate
        .connections()
        .into_iter()
        .find(|(name, _)| *name == "hubspot")
        .unwrap();
    spec["auth"]["token"] = json!("a-token-hubspot-does-not-know");
    host.call("PUT", "/v1/connections/hubspot", Some(spec))
        .await;
    let (status, _) = host
        .send("POST", "/v1/connections/hubspot/check", None)
        .await;
    assert!(!status.is_success());
    let health = host
        .call("GET", "/v1/connections/hubspot/circuit", None)
        .await;
    assert_eq!(health["last_check_ok"], false, "{health:#}");
    assert!(health["last_check_error"].is_string(), "{health:#}");
}

/// The console's runs filter by time is the API's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_filtered_by_when_they_were_created() {
    let host = shipped_host::host().await;
    let run = host.deal_won().await;
    host.finished(&run).await;
    let ids = |list: &Value| -> Vec<String> {
        list["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    let all = host.call("GET", "/v1/runs", None).await;
    assert!(ids(&all).contains(&run), "{all:#}");
    let later = host
        .call("GET", "/v1/runs?since=2999-01-01T00:00:00Z", None)
        .await;
    assert!(ids(&later).is_empty(), "{later:#}");
    let before = host
        .call("GET", "/v1/runs?until=2999-01-01T00:00:00%2B01:00", None)
        .await;
    assert_eq!(ids(&before), ids(&all));
    let earlier = host
        .call("GET", "/v1/runs?until=2000-01-01T00:00:00Z", None)
        .await;
    assert!(ids(&earlier).is_empty(), "{earlier:#}");
    let (status, body) = host.send("GET", "/v1/runs?since=yesterday", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("RFC 3339"),
        "{body}"
    );
}
