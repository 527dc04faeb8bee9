//! A host on loopback with every shipped plugin, the shipped governance
//! document and flows, connected to a fresh estate of stand-ins, driven
//! through its HTTP API: what the shipped-flow and governance tests share.

use std::collections::BTreeMap;
use std::time::Duration;

use junction::config::{Config, Scope, Token};
use junction::demo::{self, Estate};
use junction::shipped;
use junction_api as api;
use junction_flows::{FlowOptions, Flows};
use junction_standins::hubspot;
use serde_json::{Value, json};

use crate::{eventually, runtime_with};

/// The admin token of the host.
pub const ADMIN: &str = "admin-token-shipped-flows-0123";
/// A token of the read scope.
pub const VIEWER: &str = "viewer-token-shipped-flows-0123";
const TERMINAL: [&str; 3] = ["completed", "compensated", "failed"];

/// The host and its estate.
pub struct Host {
    /// Its base URL.
    pub base: String,
    /// A client of it.
    pub http: reqwest::Client,
    /// The stand-ins it is connected to.
    pub estate: Estate,
}

/// A host on loopback with every shipped plugin and flow, connected to a
/// fresh estate of stand-ins.
pub async fn host() -> Host {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = {
        let mut config = Config::default();
        config.store.database = None;
        config.runtime.cache_dir = Some(concat!(env!("OUT_DIR"), "/shipped-flows-cache").into());
        config.api.public_url = Some(base.clone());
        config.api.tokens = BTreeMap::from([
            (
                "admin".into(),
                Token {
                    token: ADMIN.into(),
                    scope: Scope::Admin,
                },
            ),
            (
                "viewer".into(),
                Token {
                    token: VIEWER.into(),
                    scope: Scope::Read,
                },
            ),
        ]);
        config
    };
    let runtime = runtime_with(&config).await;
    for package in shipped::packages() {
        runtime
            .upload_package(&package.to_bytes(), "test")
            .await
            .unwrap();
    }
    let flows = Flows::new(
        runtime,
        FlowOptions {
            workers: 2,
            lease: Duration::from_secs(30),
            idle_poll: Duration::from_millis(20),
        },
    );
    flows.spawn_workers();
    let app = api::router_with_flows(flows, &config.api);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let host = Host {
        base,
        http: reqwest::Client::new(),
        estate: Estate::start().await.unwrap(),
    };
    let mut connections = host.estate.connections();
    connections.push(("contracts", host.estate.contracts_connection()));
    for (name, spec) in connections {
        host.call("PUT", &format!("/v1/connections/{name}"), Some(spec))
            .await;
    }
    let governance = host
        .send("PUT", "/v1/governance", Some(shipped::GOVERNANCE.into()))
        .await;
    assert!(
        governance.0.is_success(),
        "deploy the governance: {governance:?}"
    );
    for (name, source) in shipped::FLOWS {
        let (status, answer) = host
            .send("PUT", &format!("/v1/flows/{name}"), Some(source.into()))
            .await;
        assert!(status.is_success(), "deploy {name}: {status} {answer}");
    }
    host
}

impl Host {
    /// Sends `body` (JSON, or TOML when it is a JSON string) with the admin
    /// token; returns the status and the JSON answer.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (reqwest::StatusCode, Value) {
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(ADMIN);
        request = match body {
            Some(Value::String(toml)) => request
                .header("content-type", "application/toml")
                .body(toml),
            Some(json) => request.json(&json),
            None => request,
        };
        let answer = request.send().await.unwrap();
        let status = answer.status();
        let text = answer.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// A one-time console sign-in link for `token`.
    pub async fn console_link(&self, token: &str) -> String {
        let answer = self
            .http
            .post(format!("{}/v1/console/links", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), reqwest::StatusCode::CREATED);
        let link: Value = answer.json().await.unwrap();
        link["url"].as_str().unwrap().to_string()
    }

    /// PUTs `toml` to `path`; panics unless the answer is a success.
    pub async fn call_toml(&self, path: &str, toml: &str) -> Value {
        self.call("PUT", path, Some(Value::String(toml.to_string())))
            .await
    }

    /// Sends `body` as JSON; panics unless the answer is a success.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.send(method, path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value
    }

    /// A closed-won HubSpot deal, delivered as HubSpot's signed webhook;
    /// returns the run it started.
    pub async fn deal_won(&self) -> String {
        self.deal_won_in("USD").await
    }

    /// A deal in `currency` moves to closed-won in HubSpot, which tells the
    /// host; returns the run it started.
    pub async fn deal_won_in(&self, currency: &str) -> String {
        let deal = demo::crm_deal(&self.estate.hubspot, currency)
            .await
            .unwrap();
        let event = hubspot::property_change_event("deal", deal, "dealstage", "closedwon");
        let delivery = hubspot::webhook_delivery(
            demo::HUBSPOT_SECRET,
            &format!("{}/v1/webhooks/hubspot", self.base),
            &[event],
        );
        let mut request = self
            .http
            .post(format!("{}/v1/webhooks/hubspot", self.base))
            .header("content-type", "application/json")
            .body(delivery.body.clone());
        for (name, value) in delivery.headers() {
            request = request.header(name, value);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        answer["runs"]
            .as_array()
            .and_then(|runs| runs.iter().find(|r| r["flow"] == "closed-won-to-project"))
            .and_then(|r| r["run"].as_str())
            .unwrap_or_else(|| panic!("no run started: {answer}"))
            .to_string()
    }

    /// Polls the run until it ends, confirming its staffing plan as the
    /// resource manager when it waits for that; panics after 60 s.
    pub async fn finished(&self, run: &str) -> Value {
        eventually(
            &format!("run {run} ends"),
            Duration::from_secs(60),
            Duration::from_millis(20),
            || async {
                let view = self.call("GET", &format!("/v1/runs/{run}"), None).await;
                if view["waiting_for"]["signal"] == "staffing_confirmed" {
                    let confirm = json!({"decision": "approve", "comment": "plan confirmed"});
                    let path = format!("/v1/runs/{run}/signals/staffing_confirmed");
                    self.call("POST", &path, Some(confirm)).await;
                }
                if TERMINAL.contains(&view["status"].as_str().unwrap()) {
                    Ok(view)
                } else {
                    Err(format!("{view:#}"))
                }
            },
        )
        .await
    }

    /// Waits for the first run of `flow` and until it ends.
    pub async fn first_run_of(&self, flow: &str) -> Value {
        let id = eventually(
            &format!("a run of {flow} starts"),
            Duration::from_secs(60),
            Duration::from_millis(20),
            || async {
                let runs = self
                    .call("GET", &format!("/v1/runs?flow={flow}"), None)
                    .await;
                runs["runs"][0]["id"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{runs}"))
            },
        )
        .await;
        self.finished(&id).await
    }
}
