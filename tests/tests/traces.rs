//! One business transaction, one trace: a signed webhook carrying a
//! `traceparent` starts a three-step flow against the PSA stand-in, and the
//! spans the host exports over OTLP (to a receiver inside this test, which
//! decodes the protobuf with the OpenTelemetry project's own types) form one
//! tree: the webhook request -> the run -> each step -> each plugin call ->
//! each outbound request, and the stand-in received a `traceparent` of that
//! trace. A run that one host starts and another finishes after the first
//! is gone (a restart) stays in its trace.
//!
//! The host's subscriber is process-wide, so this file is its own test
//! binary and its tests share one receiver. Nothing waits a fixed time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use junction::config::{Config, Scope, Token};
use junction::shipped;
use junction::telemetry::{Telemetry, TelemetryConfig};
use junction_api as api;
use junction_flows::Flows;
use junction_registry::Package;
use junction_runtime::engine::Limits;
use junction_runtime::runtime::Runtime;
use junction_standins::{ContractStandin, Misbehaviour, PsaStandin, WebhookAttempt};
use junction_tests::{eventually, test_config, test_limits};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789";
const PSA_TOKEN: &str = "psa-access-token-5d1e";
const CONTRACT_TOKEN: &str = "contract-access-token-c3a9";
const CONTRACT_SECRET: &str = "contract-connect-hmac-key-91d2";

/// A span as received, ids in hex.
#[derive(Debug, Clone)]
struct Received {
    trace: String,
    id: String,
    parent: String,
    name: String,
    attributes: BTreeMap<String, String>,
}

/// The OTLP/HTTP receiver: every span posted to `/v1/traces`.
struct Receiver {
    base: String,
    spans: Arc<Mutex<Vec<Received>>>,
}

fn text(value: Option<&AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn receiver() -> &'static Receiver {
    static RECEIVER: OnceLock<Receiver> = OnceLock::new();
    RECEIVER.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = spans.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().route(
                    "/v1/traces",
                    axum::routing::post(move |body: Bytes| {
                        let sink = sink.clone();
                        async move {
                            let request = ExportTraceServiceRequest::decode(body).unwrap();
                            let mut spans = sink.lock().unwrap();
                            for resource in request.resource_spans {
                                for scope in resource.scope_spans {
                                    for span in scope.spans {
                                        spans.push(Received {
                                            trace: hex::encode(&span.trace_id),
                                            id: hex::encode(&span.span_id),
                                            parent: hex::encode(&span.parent_span_id),
                                            name: span.name,
                                            attributes: span
                                                .attributes
                                                .into_iter()
                                                .map(|kv| {
                                                    let value = kv.value.and_then(|v| v.value);
                                                    (kv.key, text(value.as_ref()))
                                                })
                                                .collect(),
                                        });
                                    }
                                }
                            }
                            ExportTraceServiceResponse::default().encode_to_vec()
                        }
                    }),
                );
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        Receiver { base, spans }
    })
}

/// The host's logs and traces, exporting to [`receiver`].
fn telemetry() -> &'static Telemetry {
    static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
    TELEMETRY.get_or_init(|| {
        let config = TelemetryConfig {
            traces: Some(true),
            otlp_endpoint: Some(receiver().base.clone()),
            service_name: Some("junction-under-test".into()),
            ..TelemetryConfig::default()
        };
        junction::telemetry::init(&config, "warn").unwrap()
    })
}

/// Sends every finished span, then returns those of `trace`.
async fn spans_of(trace: &str) -> Vec<Received> {
    tokio::task::spawn_blocking(|| telemetry().flush().unwrap())
        .await
        .unwrap();
    let spans = receiver().spans.lock().unwrap();
    spans.iter().filter(|s| s.trace == trace).cloned().collect()
}

/// The spans of `trace` once `ready` finds them all exported (a span ends
/// just after the write that a test sees, so the export is polled).
async fn exported(trace: &str, ready: impl Fn(&[Received]) -> bool) -> Vec<Received> {
    eventually(
        "the run's spans are exported",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || async {
            let spans = spans_of(trace).await;
            if ready(&spans) {
                Ok(spans)
            } else {
                Err(format!(
                    "{:#?}",
                    spans.iter().map(|s| &s.name).collect::<Vec<_>>()
                ))
            }
        },
    )
    .await
}

const FLOW: &str = r#"
description = "three PSA calls for one signed contract"
trigger = { type = "event", connection = "contract", event = "contract.signed" }

[[steps]]
id = "before"
connection = "psa"
operation = "get-project"
input = "{external_id: .trigger.data.externalReference}"
retry = { attempts = 5, backoff_ms = 10, max_backoff_ms = 20 }

[[steps]]
id = "activate"
connection = "psa"
operation = "activate-project"
input = "{external_id: .trigger.data.externalReference}"

[[steps]]
id = "after"
connection = "psa"
operation = "get-project"
input = "{external_id: .trigger.data.externalReference}"
"#;

fn config(database: Option<std::path::PathBuf>) -> Config {
    let mut config = test_config(Limits {
        deadline_ms: 10_000,
        ..test_limits()
    });
    config.store.database = database;
    config.runtime.cache_dir =
        Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("traces-cache"));
    config.api.tokens = BTreeMap::from([(
        "admin".into(),
        Token {
            token: ADMIN.into(),
            scope: Scope::Admin,
        },
    )]);
    config
}

/// A host on `config` with the PSA and contract connectors, serving the API
/// (with its flow workers when `workers`).
struct Host {
    rt: Arc<Runtime>,
    flows: Arc<Flows>,
    base: String,
    http: reqwest::Client,
}

async fn host(config: &Config, workers: bool, load: bool) -> Host {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let rt = Runtime::open(&config.store, &config.runtime).await.unwrap();
    if load {
        for (manifest, component) in [
            (shipped::PSA_MANIFEST, shipped::PSA_CONNECTOR),
            (shipped::CONTRACT_MANIFEST, shipped::CONTRACT_CONNECTOR),
        ] {
            let package = Package::new(manifest, component).to_bytes();
            rt.upload_package(&package, "test").await.unwrap();
        }
    }
    let flows = Flows::new(rt.clone(), config.flows.options());
    if workers {
        flows.spawn_workers();
    }
    let mut api_config = config.api.clone();
    api_config.public_url = Some(base.clone());
    let app = api::router_with_flows(flows.clone(), &api_config);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Host {
        rt,
        flows,
        base,
        http: reqwest::Client::new(),
    }
}

impl Host {
    async fn call(&self, method: reqwest::Method, path: &str, body: String) -> (StatusCode, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn set_up(&self, psa: &PsaStandin, tool: &ContractStandin) {
        let connections = [
            (
                "psa",
                json!({"plugin": "psa", "config": {"base_url": psa.base_url()},
                       "auth": {"type": "bearer", "token": PSA_TOKEN},
                       "allowed_hosts": [psa.host()], "private_hosts": [psa.host()]}),
            ),
            (
                "contract",
                json!({"plugin": "contract",
                       "config": {"base_url": tool.base_url(),
                                  "account_id": junction_standins::contract::ACCOUNT_ID},
                       "auth": {"type": "bearer", "token": CONTRACT_TOKEN},
                       "allowed_hosts": [tool.host()], "private_hosts": [tool.host()],
                       "webhook": {"scheme": {"generic_hmac": {"header": "x-docusign-signature-1",
                                                               "encoding": "base64"}},
                                   "secret": CONTRACT_SECRET}}),
            ),
        ];
        for (name, body) in connections {
            let (status, answer) = self
                .call(
                    reqwest::Method::PUT,
                    &format!("/v1/connections/{name}"),
                    body.to_string(),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{answer}");
        }
        let (status, answer) = self
            .call(reqwest::Method::PUT, "/v1/flows/traced", FLOW.into())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }

    /// Posts a webhook as the tool signed it, with `traceparent`.
    async fn deliver(&self, attempt: &WebhookAttempt, traceparent: &str) -> Value {
        let mut request = self
            .http
            .post(format!("{}/v1/webhooks/contract", self.base))
            .header("traceparent", traceparent)
            .body(attempt.body.clone());
        for (name, value) in &attempt.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let traceresponse = response.headers()["traceresponse"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(traceresponse[3..35], traceparent[3..35], "{traceresponse}");
        response.json().await.unwrap()
    }

    async fn run(&self, id: &str) -> Value {
        self.call(
            reqwest::Method::GET,
            &format!("/v1/runs/{id}"),
            String::new(),
        )
        .await
        .1
    }
}

/// A project in the PSA, a contract for it in the tool, signed: the signed
/// webhook the tool would send (to an address that does not answer, so the
/// test delivers it itself, with its own `traceparent`).
async fn signed_webhook(host: &Host, tool: &ContractStandin, reference: &str) -> WebhookAttempt {
    let (status, project) = host
        .call(
            reqwest::Method::POST,
            "/v1/connections/psa/operations/upsert-project",
            json!({"external_id": reference, "name": "Acme rollout"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{project}");
    let (status, created) = host
        .call(
            reqwest::Method::POST,
            "/v1/connections/contract/operations/create-contract",
            json!({"title": "Acme MSA", "externalReference": reference, "status": "sent",
                   "signers": [{"name": "Ann Client", "email": "ann@client.example"}],
                   "value": {"amount": 120000.0, "currency": "USD"}})
            .to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/v1/webhooks/contract",
        nowhere.local_addr().unwrap()
    );
    drop(nowhere);
    tool.subscribe_webhooks(&url, CONTRACT_SECRET);
    tool.sign(created["contractId"].as_str().unwrap()).unwrap();
    eventually(
        "the tool tries to send its webhook",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || async {
            tool.webhooks()
                .into_iter()
                .find(|a| a.event == "contract.signed")
                .ok_or_else(|| "no attempt yet".to_string())
        },
    )
    .await
}

fn named<'a>(spans: &'a [Received], name: &str) -> Vec<&'a Received> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn children<'a>(spans: &'a [Received], parent: &Received) -> Vec<&'a Received> {
    spans.iter().filter(|s| s.parent == parent.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_run_is_one_trace_from_the_request_to_the_systems_called() {
    telemetry();
    let config = config(None);
    let host = host(&config, true, true).await;
    let psa = PsaStandin::start(PSA_TOKEN).await.unwrap();
    let tool = ContractStandin::start(CONTRACT_TOKEN).await.unwrap();
    host.set_up(&psa, &tool).await;
    let attempt = signed_webhook(&host, &tool, "hubspot-1001").await;

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let answer = host
        .deliver(&attempt, &format!("00-{trace}-{caller_span}-01"))
        .await;
    let run_id = answer["runs"][0]["run"].as_str().unwrap().to_owned();
    let run = eventually(
        "the run completes",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || async {
            let run = host.run(&run_id).await;
            if run["status"] == "completed" {
                Ok(run)
            } else {
                Err(run.to_string())
            }
        },
    )
    .await;
    assert_eq!(run["trace_id"], trace, "{run}");

    // The run's span ends just after its last write: poll the export.
    let spans = exported(trace, |spans| {
        named(spans, "step after").len() == 1 && !named(spans, "run traced").is_empty()
    })
    .await;

    let request = named(&spans, "POST /v1/webhooks/{connection}");
    assert_eq!(request.len(), 1, "{spans:#?}");
    let request = request[0];
    assert_eq!(request.parent, caller_span);
    assert_eq!(request.attributes["http.response.status_code"], "200");
    let parse = children(&spans, request)
        .into_iter()
        .find(|s| s.name == "handle-webhook handle-webhook")
        .unwrap_or_else(|| panic!("no webhook parse under the request: {spans:#?}"));
    assert_eq!(parse.attributes["plugin"], "contract");

    let runs = named(&spans, "run traced");
    assert!(runs.iter().all(|r| r.parent == request.id), "{runs:#?}");
    assert!(runs.iter().all(|r| r.attributes["run"] == run_id));
    assert_eq!(runs[0].attributes["trigger.type"], "contract.signed");
    let mut outbound_ids = Vec::new();
    for step in ["before", "activate", "after"] {
        let step_spans = named(&spans, &format!("step {step}"));
        assert_eq!(step_spans.len(), 1, "{step}: {spans:#?}");
        let step_span = step_spans[0];
        assert!(
            runs.iter().any(|r| r.id == step_span.parent),
            "{step} under a run"
        );
        assert_eq!(step_span.attributes["outcome"], "ok");
        let calls = children(&spans, step_span);
        assert_eq!(calls.len(), 1, "{step}: {calls:#?}");
        let call = calls[0];
        assert!(call.name.starts_with("invoke "), "{call:?}");
        assert_eq!(call.attributes["plugin"], "psa");
        assert_eq!(call.attributes["connection"], "psa");
        assert_eq!(call.attributes["outcome"], "ok");
        assert!(!call.attributes["plugin.version"].is_empty());
        assert!(call.attributes["memory.peak_bytes"].parse::<u64>().unwrap() > 0);
        let requests = children(&spans, call);
        assert!(!requests.is_empty(), "{step}: no outbound request span");
        for r in requests {
            assert_eq!(r.attributes["http.response.status_code"], "200", "{r:?}");
            assert_eq!(
                r.attributes["server.address"],
                psa.host().split(':').next().unwrap()
            );
            outbound_ids.push(r.id.clone());
        }
    }

    // The PSA received the trace: each request's traceparent names the
    // span of that request.
    let sent: Vec<String> = psa
        .requests()
        .into_iter()
        .filter_map(|r| r.headers.get("traceparent").cloned())
        .filter(|t| t[3..35] == *trace)
        .collect();
    assert_eq!(sent.len(), outbound_ids.len(), "{sent:?}");
    for traceparent in sent {
        assert!(
            outbound_ids.contains(&traceparent[36..52].to_string()),
            "{traceparent}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_resumed_by_another_host_after_a_restart_keeps_its_trace() {
    telemetry();
    let dir = tempfile::tempdir().unwrap();
    let config = config(Some(dir.path().join("junction.db")));
    let psa = PsaStandin::start(PSA_TOKEN).await.unwrap();
    let tool = ContractStandin::start(CONTRACT_TOKEN).await.unwrap();
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let run_id = {
        // The first host takes the webhook and tries the first step while
        // the PSA is down, then stops; the run waits for its retry.
        let first = host(&config, false, true).await;
        first.set_up(&psa, &tool).await;
        let attempt = signed_webhook(&first, &tool, "hubspot-2002").await;
        let answer = first
            .deliver(&attempt, &format!("00-{trace}-b7ad6b7169203331-01"))
            .await;
        let run_id = answer["runs"][0]["run"].as_str().unwrap().to_owned();
        psa.misbehave(Misbehaviour::ServerError { times: 1 });
        assert!(first.flows.work_once("first-host").await.unwrap());
        let run = first.run(&run_id).await;
        assert_eq!(run["steps"][0]["attempts"], 1, "{run}");
        assert_ne!(run["steps"][0]["status"], "completed", "{run}");
        drop(first.rt);
        run_id
    };

    let second = host(&config, false, false).await;
    eventually(
        "the second host finishes the run",
        Duration::from_secs(20),
        Duration::from_millis(10),
        || async {
            second.flows.work_once("second-host").await.unwrap();
            let run = second.run(&run_id).await;
            if run["status"] == "completed" {
                Ok(())
            } else {
                Err(run.to_string())
            }
        },
    )
    .await;
    assert_eq!(second.run(&run_id).await["trace_id"], trace);

    let spans = exported(trace, |spans| named(spans, "step after").len() == 1).await;
    let request = named(&spans, "POST /v1/webhooks/{connection}")[0];
    let runs = named(&spans, "run traced");
    assert!(runs.len() >= 2, "one stretch per host: {runs:#?}");
    assert!(runs.iter().all(|r| r.parent == request.id), "{runs:#?}");
    let before = named(&spans, "step before");
    assert_eq!(
        before.len(),
        2,
        "the failed attempt and the retry: {before:#?}"
    );
    assert!(
        before
            .iter()
            .any(|s| s.attributes["outcome"] == "unavailable"),
        "{before:#?}"
    );
    assert!(before.iter().any(|s| s.attributes["outcome"] == "ok"));
    assert_eq!(named(&spans, "step activate").len(), 1);
}
