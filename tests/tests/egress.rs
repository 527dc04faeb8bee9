//! Outbound HTTP from plugins: the egress policy after DNS, response caps
//! and timeouts, host-side credentials (static and OAuth 2.0) that never
//! reach guest memory, and per-connection rate limits.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use junction_runtime::engine::Limits;
use junction_runtime::runtime::{CallError, CallOptions, ConnectionSpec, PluginError, Runtime};
use junction_store::{Auth, RateLimit};
use junction_tests::{guests, runtime, test_limits};
use serde_json::{Value, json};

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

async fn fetch(rt: &Runtime, connection: &str, url: &str) -> Result<Value, CallError> {
    let input = json!({ "url": url }).to_string();
    rt.invoke(connection, "fetch", &input, CallOptions::default())
        .await
        .map(|out| serde_json::from_str(&out.json).unwrap())
}

async fn echo_runtime(limits: Limits) -> Arc<Runtime> {
    let rt = runtime(limits).await;
    rt.load_plugin(&guests::bytes(guests::ECHO)).await.unwrap();
    rt
}

fn spec(allowed: &[&str], private: &[&str]) -> ConnectionSpec {
    ConnectionSpec {
        plugin: "echo".into(),
        allowed_hosts: allowed.iter().map(|s| s.to_string()).collect(),
        private_hosts: private.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// A loopback server that counts the requests it gets.
async fn counting_server() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            "reached"
        }
    });
    (serve(app).await, hits)
}

#[tokio::test]
async fn non_public_destinations_are_refused_after_resolution() {
    let rt = echo_runtime(test_limits()).await;
    let (server, hits) = counting_server().await;
    let port = server.rsplit_once(':').unwrap().1;
    // Everything is on the allowlist; nothing has a private-address grant.
    rt.put_connection(
        "web",
        spec(
            &["169.254.169.254", "127.0.0.1", "10.0.0.1", "localhost"],
            &[],
        ),
    )
    .await
    .unwrap();
    let started = Instant::now();
    for url in [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/".to_string(),
        format!("http://127.0.0.1:{port}/"),
        "http://10.0.0.1/".to_string(),
        // A DNS name that resolves to loopback.
        format!("http://localhost:{port}/"),
    ] {
        // The refusal is the policy's, naming the setting, not "the plugin failed".
        let err = fetch(&rt, "web", &url).await.unwrap_err();
        assert_eq!(err.outcome(), "egress_denied", "{url}: {err}");
        assert!(err.to_string().contains("private_hosts"), "{url}: {err}");
    }
    let err = fetch(&rt, "web", "http://not-listed.example/")
        .await
        .unwrap_err();
    assert_eq!(err.outcome(), "egress_denied", "{err}");
    assert!(err.to_string().contains("`allowed_hosts`"), "{err}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "no request reached the server"
    );
    // Refused before any connection attempt: nothing waited on a timeout.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // With the grant, the same loopback server is reachable.
    rt.put_connection("granted", spec(&[&server], &[&server]))
        .await
        .unwrap();
    let ok = fetch(&rt, "granted", &format!("http://{server}/"))
        .await
        .unwrap();
    assert_eq!(ok["body"], "reached");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn slow_drip_times_out_and_an_endless_body_hits_the_cap() {
    let limits = Limits {
        response_bytes: 256 * 1024,
        ..test_limits()
    };
    let rt = echo_runtime(limits.clone()).await;
    let app = Router::new()
        .route(
            "/drip",
            get(|| async {
                let stream = futures_stream(Duration::from_millis(100), 1);
                Body::from_stream(stream)
            }),
        )
        .route(
            "/endless",
            get(|| async { Body::from_stream(futures_stream(Duration::ZERO, 64 * 1024)) }),
        );
    let server = serve(app).await;
    rt.put_connection("web", spec(&[&server], &[&server]))
        .await
        .unwrap();

    let started = Instant::now();
    let err = fetch(&rt, "web", &format!("http://{server}/drip"))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_millis(limits.deadline_ms * 2));

    let err = fetch(&rt, "web", &format!("http://{server}/endless"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("response body size exceeds limit"),
        "{err}"
    );
}

/// An endless stream of `chunk`-byte frames, one every `every`.
fn futures_stream(
    every: Duration,
    chunk: usize,
) -> impl futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            if tx
                .send(Ok(bytes::Bytes::from(vec![b'x'; chunk])))
                .await
                .is_err()
            {
                break;
            }
            if !every.is_zero() {
                tokio::time::sleep(every).await;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[tokio::test]
async fn the_secret_dumping_guest_finds_nothing() {
    let limits = Limits {
        memory_mib: 64,
        output_bytes: 32 * 1024 * 1024,
        ..test_limits()
    };
    let rt = runtime(limits).await;
    rt.load_plugin(&guests::bytes(guests::DUMPER))
        .await
        .unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let app = Router::new().fallback(move |headers: HeaderMap| {
        let record = record.clone();
        async move {
            let auth = headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            record.lock().unwrap().push(auth);
            axum::Json(json!({"ok": true}))
        }
    });
    let server = serve(app).await;
    let password = "pw-9f8e7d6c5b4a3210";
    rt.put_connection(
        "crm",
        ConnectionSpec {
            plugin: "dumper".into(),
            config: BTreeMap::from([("region".to_string(), "eu".to_string())]),
            auth: Some(Auth::Basic {
                username: "svc-user".into(),
                password: password.into(),
            }),
            allowed_hosts: vec![server.clone()],
            private_hosts: vec![server.clone()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let out = rt
        .invoke(
            "crm",
            "dump",
            &json!({"url": format!("http://{server}/")}).to_string(),
            CallOptions::default(),
        )
        .await
        .unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("svc-user:{password}"));
    // The system got the credential...
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [format!("Basic {encoded}")]
    );
    // ...and nothing the guest could observe holds it.
    let dump: Value = serde_json::from_str(&out.json).unwrap();
    assert_eq!(dump["status"], 200);
    assert_eq!(dump["config"]["region"], "eu", "the dump is real");
    let memory = hex_decode(dump["memory"].as_str().unwrap());
    assert!(
        memory.len() >= 64 * 1024,
        "a whole linear memory: {}",
        memory.len()
    );
    let text = out.json.as_bytes();
    for needle in [password.as_bytes(), encoded.as_bytes(), b"svc-user:"] {
        assert!(!contains(text, needle), "the dump's text holds a secret");
        assert!(!contains(&memory, needle), "guest memory holds a secret");
    }
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// An OAuth 2.0 token endpoint and an API that only takes its current token.
#[derive(Default)]
struct OAuthSystem {
    token_requests: Mutex<Vec<String>>,
    issued: AtomicUsize,
    valid: Mutex<String>,
}

async fn oauth_system() -> (String, Arc<OAuthSystem>) {
    let system = Arc::new(OAuthSystem::default());
    async fn token(
        State(system): State<Arc<OAuthSystem>>,
        headers: HeaderMap,
        body: String,
    ) -> Response {
        let basic = base64::engine::general_purpose::STANDARD.encode("client-1:client-secret-1");
        if headers.get("authorization").map(|v| v.to_str().unwrap())
            != Some(&format!("Basic {basic}"))
        {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": "invalid_client"})),
            )
                .into_response();
        }
        system.token_requests.lock().unwrap().push(body);
        let n = system.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("tok-{n}");
        *system.valid.lock().unwrap() = token.clone();
        axum::Json(json!({"access_token": token, "token_type": "bearer", "expires_in": 3600}))
            .into_response()
    }
    async fn api(State(system): State<Arc<OAuthSystem>>, headers: HeaderMap) -> Response {
        let valid = format!("Bearer {}", system.valid.lock().unwrap());
        match headers.get("authorization").map(|v| v.to_str().unwrap()) {
            Some(given) if given == valid => axum::Json(json!({"ok": true})).into_response(),
            _ => StatusCode::UNAUTHORIZED.into_response(),
        }
    }
    let app = Router::new()
        .route("/token", post(token))
        .route("/api", get(api))
        .with_state(system.clone());
    (serve(app).await, system)
}

#[tokio::test]
async fn oauth2_client_credentials_are_fetched_cached_and_refreshed_on_401() {
    let rt = echo_runtime(test_limits()).await;
    let (server, system) = oauth_system().await;
    rt.put_connection(
        "erp",
        ConnectionSpec {
            auth: Some(Auth::OAuth2ClientCredentials {
                token_url: format!("http://{server}/token"),
                client_id: "client-1".into(),
                client_secret: "client-secret-1".into(),
                scope: Some("records.read records.write".into()),
            }),
            ..spec(&[&server], &[&server])
        },
    )
    .await
    .unwrap();
    let url = format!("http://{server}/api");
    let first = fetch(&rt, "erp", &url).await.unwrap();
    assert_eq!(first["status"], 200, "{first}");
    let second = fetch(&rt, "erp", &url).await.unwrap();
    assert_eq!(second["status"], 200);
    assert_eq!(
        system.issued.load(Ordering::SeqCst),
        1,
        "the token is cached"
    );
    let request = system.token_requests.lock().unwrap()[0].clone();
    assert!(
        request.contains("grant_type=client_credentials"),
        "{request}"
    );
    assert!(
        request.contains("scope=records.read+records.write"),
        "{request}"
    );

    // The system revokes the token: the next call gets 401, the host fetches
    // a new token and sends the request again; the plugin sees only success.
    *system.valid.lock().unwrap() = "revoked".into();
    let third = fetch(&rt, "erp", &url).await.unwrap();
    assert_eq!(third["status"], 200, "{third}");
    assert_eq!(system.issued.load(Ordering::SeqCst), 2);
    assert!(
        !third.to_string().contains("tok-"),
        "the guest never sees a token"
    );
}

#[tokio::test]
async fn oauth2_refresh_token_grant_sends_the_refresh_token() {
    let rt = echo_runtime(test_limits()).await;
    let (server, system) = oauth_system().await;
    rt.put_connection(
        "crm",
        ConnectionSpec {
            auth: Some(Auth::OAuth2RefreshToken {
                token_url: format!("http://{server}/token"),
                client_id: "client-1".into(),
                client_secret: "client-secret-1".into(),
                refresh_token: "rt-long-lived".into(),
                scope: None,
            }),
            ..spec(&[&server], &[&server])
        },
    )
    .await
    .unwrap();
    let ok = fetch(&rt, "crm", &format!("http://{server}/api"))
        .await
        .unwrap();
    assert_eq!(ok["status"], 200);
    let request = system.token_requests.lock().unwrap()[0].clone();
    assert!(request.contains("grant_type=refresh_token"), "{request}");
    assert!(request.contains("refresh_token=rt-long-lived"), "{request}");
}

/// An upstream that allows `per_second` requests in any one-second window
/// and answers 429 beyond that; it records when each request arrived.
async fn limited_upstream(per_second: usize) -> (String, Arc<Mutex<Vec<(Instant, u16)>>>) {
    let log: Arc<Mutex<Vec<(Instant, u16)>>> = Arc::default();
    let record = log.clone();
    let app = Router::new().fallback(move || {
        let record = record.clone();
        async move {
            let now = Instant::now();
            let mut log = record.lock().unwrap();
            let recent = log
                .iter()
                .filter(|(at, status)| {
                    *status == 200 && now.duration_since(*at) < Duration::from_secs(1)
                })
                .count();
            let status = if recent >= per_second { 429 } else { 200 };
            log.push((now, status));
            StatusCode::from_u16(status).unwrap()
        }
    });
    (serve(app).await, log)
}

#[tokio::test]
async fn a_burst_at_ten_times_the_rate_limit_is_shaped() {
    const RATE: u32 = 5;
    let limits = Limits {
        deadline_ms: 2_000,
        pooled_instances: 128,
        concurrency: 100,
        ..test_limits()
    };
    let rt = echo_runtime(limits).await;
    // The upstream allows one request of slack per second: requests the
    // host spaces exactly 1/RATE apart can arrive a little closer.
    let (server, log) = limited_upstream(RATE as usize + 1).await;
    rt.put_connection(
        "crm",
        ConnectionSpec {
            rate_limit: Some(RateLimit {
                requests: RATE,
                per_seconds: 1,
                burst: Some(1),
            }),
            ..spec(&[&server], &[&server])
        },
    )
    .await
    .unwrap();
    let url = format!("http://{server}/");
    let calls: Vec<_> = (0..10 * RATE)
        .map(|_| {
            let rt = rt.clone();
            let url = url.clone();
            tokio::spawn(async move { fetch(&rt, "crm", &url).await })
        })
        .collect();
    let mut passed = 0;
    let mut limited = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(out) => {
                assert_eq!(out["status"], 200, "the upstream's limit was never hit");
                passed += 1;
            }
            Err(CallError::Plugin(PluginError::RateLimited(ms))) => {
                assert!(ms > 0);
                limited += 1;
            }
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    let log = log.lock().unwrap();
    assert!(
        log.iter().all(|(_, status)| *status == 200),
        "no upstream 429"
    );
    assert_eq!(log.len(), passed);
    assert!(
        limited > 0 && passed > 0,
        "passed {passed}, limited {limited}"
    );
    // What reached the upstream stayed at the limit: one burst slot, then
    // RATE per second over the deadline (2 s).
    assert!(passed <= 1 + 2 * RATE as usize + 1, "passed {passed}");
    let span = log.last().unwrap().0.duration_since(log[0].0).as_secs_f64();
    let rate = (log.len() - 1) as f64 / span;
    assert!(
        rate <= f64::from(RATE) * 1.25,
        "upstream saw {rate:.1} calls/s"
    );
}

#[tokio::test]
async fn an_upstream_retry_after_pauses_the_connection() {
    let rt = echo_runtime(test_limits()).await;
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "30")],
                "slow down",
            )
        }
    });
    let server = serve(app).await;
    rt.put_connection("crm", spec(&[&server], &[&server]))
        .await
        .unwrap();
    let url = format!("http://{server}/");
    let first = fetch(&rt, "crm", &url).await.unwrap();
    assert_eq!(first["status"], 429);
    // The host now holds the connection back: the next call fails at once
    // with the wait, and the upstream is not asked again.
    let err = fetch(&rt, "crm", &url).await.unwrap_err();
    match err {
        CallError::Plugin(PluginError::RateLimited(ms)) => assert!(ms > 29_000, "{ms}"),
        other => panic!("unexpected: {other}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
