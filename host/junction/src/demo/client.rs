//! The demo's HTTP client of the host, the stand-ins' answers, and the
//! lines it prints.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::shipped;

/// Deploys a shipped flow through the API.
pub(super) async fn deploy(client: &Client, name: &str) -> anyhow::Result<()> {
    let source = shipped::flow(name).with_context(|| format!("no shipped flow `{name}`"))?;
    step(&format!("PUT /v1/flows/{name}"));
    let deployed = client
        .send(
            reqwest::Method::PUT,
            &format!("/v1/flows/{name}"),
            Body::Text(source.to_string()),
        )
        .await?;
    done(&format!("version {}", deployed["version"]));
    Ok(())
}

/// Sends a request to a stand-in and returns its JSON answer.
pub(super) async fn saas(request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("the stand-in answered {status}: {text}");
    }
    if text.is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_str(&text)?)
}

pub(super) const TERMINAL: [&str; 3] = ["completed", "compensated", "failed"];

/// Polls a run until it ends (at most a minute).
pub(super) async fn finished(client: &Client, run: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = client
            .send(
                reqwest::Method::GET,
                &format!("/v1/runs/{run}"),
                Body::Empty,
            )
            .await?;
        if TERMINAL.contains(&view["status"].as_str().unwrap_or("")) {
            return Ok(view);
        }
        if let Some(signal) = view["waiting_for"]["signal"].as_str() {
            // The resource manager confirms the staffing plan.
            step(&format!(
                "POST /v1/runs/{{id}}/signals/{signal} (the resource manager approves)"
            ));
            let sent = client
                .send(
                    reqwest::Method::POST,
                    &format!("/v1/runs/{run}/signals/{signal}"),
                    Body::Json(serde_json::json!({
                        "decision": "approve",
                        "comment": "staffing plan confirmed",
                    })),
                )
                .await?;
            done(&format!(
                "{} by {} at {}",
                sent["decision"].as_str().unwrap_or("?"),
                sent["by"].as_str().unwrap_or("?"),
                sent["at"].as_str().unwrap_or("?")
            ));
        }
        if Instant::now() > deadline {
            bail!("run {run} did not finish within a minute: {view}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits for the first run of `flow` and until it ends.
pub(super) async fn run_of(client: &Client, flow: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = client
            .send(
                reqwest::Method::GET,
                &format!("/v1/runs?flow={flow}"),
                Body::Empty,
            )
            .await?;
        if let Some(id) = runs["runs"]
            .as_array()
            .and_then(|r| r.first())
            .and_then(|r| r["id"].as_str())
        {
            return finished(client, id).await;
        }
        if Instant::now() > deadline {
            bail!("no run of {flow} started within a minute");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub(super) fn print_run(run: &Value) {
    println!(
        "     run {} of {}: {}",
        run["id"].as_str().unwrap_or("?"),
        run["flow"].as_str().unwrap_or("?"),
        run["status"].as_str().unwrap_or("?")
    );
    for s in run["steps"].as_array().into_iter().flatten() {
        println!(
            "       {:<18} {:<10} attempts {}  key {}",
            s["id"].as_str().unwrap_or("?"),
            s["status"].as_str().unwrap_or("?"),
            s["attempts"],
            s["idempotency_key"].as_str().unwrap_or("-")
        );
        for e in s["errors"].as_array().into_iter().flatten() {
            println!(
                "         {} error: {}",
                e["kind"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or("?")
            );
        }
    }
}

pub(super) fn step(what: &str) {
    use std::io::Write as _;
    print!("  .. {what} ");
    let _ = std::io::stdout().flush();
}

pub(super) fn done(result: &str) {
    println!("-> {result}");
}

pub(super) enum Body {
    Empty,
    Json(Value),
    Text(String),
    Bytes(Vec<u8>),
}

pub(super) struct Client {
    pub(super) http: reqwest::Client,
    pub(super) base: String,
    pub(super) token: String,
}

impl Client {
    pub(super) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Body,
    ) -> anyhow::Result<Value> {
        let request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        let request = match body {
            Body::Empty => request,
            Body::Json(value) => request.json(&value),
            Body::Text(text) => request
                .header("content-type", "application/toml")
                .body(text),
            Body::Bytes(bytes) => request
                .header("content-type", "application/octet-stream")
                .body(bytes),
        };
        Self::answer(&method, path, request).await
    }

    /// Posts `body` with `headers` and no bearer token, as a webhook sender does.
    pub(super) async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: Vec<(&'static str, String)>,
        body: String,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        Self::answer(&method, path, request).await
    }

    pub(super) async fn answer(
        method: &reqwest::Method,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<Value> {
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {text}");
        }
        serde_json::from_str(&text)
            .with_context(|| format!("{method} {path} answered non-JSON: {text}"))
    }
}
