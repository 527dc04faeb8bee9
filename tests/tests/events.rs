//! Events out: every event the host emits or passes on is a CloudEvent 1.0
//! (checked against the specification's JSON schema, vendored in
//! `tests/data/cloudevents`, and parsed by the CloudEvents SDK), written to
//! the outbox with the state change it describes, served as the feed
//! `GET /v1/events`, and published to NATS JetStream once per event even
//! when a host dies between JetStream's acknowledgement and its mark.
//!
//! The feed runs on SQLite and on PostgreSQL (`JUNCTION_TEST_POSTGRES_URL`);
//! JetStream needs `JUNCTION_TEST_NATS_URL`. Without them those halves print
//! `SKIPPED` on stderr. Runs are waited for by polling, never by sleeping.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use junction::config::{Scope, Token};
use junction_api as api;
use junction_flows::events::{EventSettings, Publisher, message_id, subject};
use junction_flows::{FlowOptions, Flows};
use junction_store::secrets::Redacted;
use junction_tests::{eventually, guests, postgres, runtime_with, test_config, test_limits};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-events-0123456789";
const READER: &str = "reader-token-events-0123456789";
const WEBHOOK_SECRET: &str = "github-webhook-secret-for-events";
const SECRET_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Two steps that complete.
const OK_FLOW: &str = r#"
trigger = { type = "manual" }
[[steps]]
id = "first"
map = "{n: .trigger.n}"
[[steps]]
id = "second"
map = "{n: (.steps.first.n + 1)}"
"#;

/// One step that fails for good: nothing to compensate, a dead letter.
const FAILING_FLOW: &str = r#"
trigger = { type = "manual" }
[[steps]]
id = "check"
map = 'error("not ok")'
"#;

/// Started by the `hooks` connection's `deal.won` events.
const ON_DEAL_FLOW: &str = r#"
trigger = { type = "event", connection = "hooks", event = "deal.won" }
[[steps]]
id = "note"
map = "{deal: .trigger.id}"
"#;

struct Host {
    app: Router,
    flows: Arc<Flows>,
}

async fn host(database: Option<String>) -> Host {
    let mut config = test_config(test_limits());
    config.store.database = database.map(Into::into);
    config.store.secret_key = Some(Redacted::new(SECRET_KEY.to_string()));
    let token = |t: &str, scope| Token {
        token: t.into(),
        scope,
    };
    config.api.tokens = BTreeMap::from([
        ("admin".into(), token(ADMIN, Scope::Admin)),
        ("reader".into(), token(READER, Scope::Read)),
    ]);
    let rt = runtime_with(&config).await;
    rt.load_plugin(&guests::bytes(guests::ECHO)).await.unwrap();
    let flows = Flows::new(
        rt,
        FlowOptions {
            workers: 2,
            lease: Duration::from_secs(5),
            idle_poll: Duration::from_millis(20),
        },
    );
    flows.spawn_workers();
    let app = api::router_with_flows(flows.clone(), &config.api);
    let h = Host { app, flows };
    let hooks =
        json!({"plugin": "echo", "webhook": {"scheme": "github", "secret": WEBHOOK_SECRET}});
    let (status, body) = h
        .call(ADMIN, "PUT", "/v1/connections/hooks", hooks.to_string())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for (name, source) in [
        ("ok", OK_FLOW),
        ("failing", FAILING_FLOW),
        ("on-deal", ON_DEAL_FLOW),
    ] {
        let uri = format!("/v1/flows/{name}");
        let (status, body) = h.call(ADMIN, "PUT", &uri, source.to_string()).await;
        assert!(status.is_success(), "deploy {name}: {status} {body}");
    }
    h
}

impl Host {
    async fn call(
        &self,
        token: &str,
        method: &str,
        uri: &str,
        body: String,
    ) -> (StatusCode, Value) {
        junction_tests::openapi::call(&self.app, Some(token), method, uri, body).await
    }

    async fn start(&self, flow: &str, trigger: Value) -> String {
        let uri = format!("/v1/flows/{flow}/runs");
        let (status, body) = self.call(ADMIN, "POST", &uri, trigger.to_string()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["run"].as_str().unwrap().to_string()
    }

    /// Posts `event` to the `hooks` webhook, signed as GitHub signs.
    async fn deliver(&self, event: &Value) -> Value {
        use hmac::{Hmac, KeyInit, Mac};
        let body = event.to_string();
        let mut mac =
            <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
        Mac::update(&mut mac, body.as_bytes());
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let request = Request::builder()
            .method("POST")
            .uri("/v1/webhooks/hooks")
            .header("x-hub-signature-256", signature)
            .body(Body::from(body))
            .unwrap();
        let answer = junction_tests::openapi::send(&self.app, request).await;
        let (status, answer) = (answer.status, answer.json());
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer
    }

    /// Polls run `run` until it has ended as `status`.
    async fn ended(&self, run: &str, status: &str) {
        eventually(
            &format!("run {run} ends as {status}"),
            Duration::from_secs(20),
            Duration::from_millis(10),
            || async {
                let (_, body) = self
                    .call(ADMIN, "GET", &format!("/v1/runs/{run}"), String::new())
                    .await;
                if body["status"] == status {
                    Ok(())
                } else {
                    Err(format!("{body:#}"))
                }
            },
        )
        .await;
    }

    /// The whole feed, read `page` events at a time with the reader token.
    async fn feed(&self, page: u32) -> Vec<Value> {
        let mut events = Vec::new();
        let mut after = String::new();
        loop {
            let uri = format!("/v1/events?after={after}&limit={page}");
            let (status, body) = self.call(READER, "GET", &uri, String::new()).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let got = body["events"].as_array().unwrap().clone();
            assert!(got.len() <= page as usize, "{body:#}");
            let next = body["next"].as_str().unwrap().to_string();
            if got.is_empty() {
                let kept = if after.is_empty() {
                    "0.0"
                } else {
                    after.as_str()
                };
                assert_eq!(next, kept, "an empty page keeps the cursor");
                return events;
            }
            assert_ne!(next, after, "a page with events moves the cursor");
            events.extend(got);
            after = next;
        }
    }
}

/// The CloudEvents 1.0 JSON schema of the specification.
fn cloudevents_schema() -> jsonschema::Validator {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/cloudevents/cloudevents.json"
    );
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

/// Checks `event` is a CloudEvent 1.0 by the schema and by the SDK.
fn assert_cloudevent(schema: &jsonschema::Validator, event: &Value) {
    let problems: Vec<String> = schema.iter_errors(event).map(|e| e.to_string()).collect();
    assert!(problems.is_empty(), "{event:#}: {problems:?}");
    for required in [
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "datacontenttype",
        "data",
    ] {
        assert!(
            event.get(required).is_some(),
            "{event:#} has no `{required}`"
        );
    }
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["datacontenttype"], "application/json");
    let parsed: cloudevents::Event = serde_json::from_value(event.clone())
        .unwrap_or_else(|e| panic!("the CloudEvents SDK refuses {event:#}: {e}"));
    use cloudevents::AttributesReader as _;
    assert_eq!(parsed.id(), event["id"].as_str().unwrap());
    assert_eq!(parsed.ty(), event["type"].as_str().unwrap());
    assert_eq!(parsed.specversion(), cloudevents::event::SpecVersion::V10);
}

/// The types of the feed's events about run `run`, in feed order.
fn types_of(feed: &[Value], run: &str) -> Vec<String> {
    feed.iter()
        .filter(|e| e["subject"] == run)
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

async fn the_feed_holds_every_event_as_a_cloudevent(database: Option<String>) {
    let h = host(database).await;
    let ok = h.start("ok", json!({"n": 1})).await;
    let failing = h.start("failing", json!({})).await;
    let delivered = h
        .deliver(&json!({"id": "deal-7", "type": "deal.won", "data": {"amount": 10}}))
        .await;
    let on_deal = delivered["runs"][0]["run"].as_str().unwrap().to_string();
    // The same delivery again: passed on once.
    h.deliver(&json!({"id": "deal-7", "type": "deal.won", "data": {"amount": 10}}))
        .await;
    h.ended(&ok, "completed").await;
    h.ended(&failing, "failed").await;
    h.ended(&on_deal, "completed").await;

    let schema = cloudevents_schema();
    let feed = h.feed(2).await;
    for event in &feed {
        assert_cloudevent(&schema, event);
    }
    let ids: BTreeSet<(&str, &str)> = feed
        .iter()
        .map(|e| (e["source"].as_str().unwrap(), e["id"].as_str().unwrap()))
        .collect();
    assert_eq!(ids.len(), feed.len(), "each event once: {feed:#?}");

    assert_eq!(
        types_of(&feed, &ok),
        [
            "dev.junction.run.started",
            "dev.junction.step.completed",
            "dev.junction.step.completed",
            "dev.junction.run.completed"
        ]
    );
    let completed = feed
        .iter()
        .find(|e| e["subject"] == ok.as_str() && e["type"] == "dev.junction.run.completed")
        .unwrap();
    assert_eq!(completed["source"], "/flows/ok");
    assert_eq!(completed["data"]["run"], ok.as_str());
    assert_eq!(completed["data"]["flow_version"], 1);

    assert_eq!(
        types_of(&feed, &failing),
        [
            "dev.junction.run.started",
            "dev.junction.run.failed",
            "dev.junction.run.dead_lettered"
        ]
    );
    let failed = feed
        .iter()
        .find(|e| e["subject"] == failing.as_str() && e["type"] == "dev.junction.run.failed")
        .unwrap();
    assert_eq!(failed["data"]["failed_step"], "check");
    assert!(
        failed["data"]["error"].to_string().contains("not ok"),
        "{failed:#}"
    );

    // The delivered event, passed on as it came (once), before the run it started.
    let passed: Vec<&Value> = feed.iter().filter(|e| e["type"] == "deal.won").collect();
    assert_eq!(passed.len(), 1, "{feed:#?}");
    assert_eq!(passed[0]["id"], "deal-7");
    assert_eq!(passed[0]["data"]["data"]["amount"], 10, "{:#}", passed[0]);
    let position = |pred: &dyn Fn(&Value) -> bool| feed.iter().position(pred).unwrap();
    assert!(
        position(&|e| e["type"] == "deal.won") < position(&|e| e["subject"] == on_deal.as_str()),
        "{feed:#?}"
    );

    // Paging does not change the feed.
    let whole = h.feed(1000).await;
    assert_eq!(whole, feed);

    // A cursor the feed never gave, and a caller without a token.
    let (status, body) = h
        .call(READER, "GET", "/v1/events?after=yesterday", String::new())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`next`"),
        "{body}"
    );
    let (status, _) = junction_tests::openapi::call(&h.app, None, "GET", "/v1/events", "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    drop(h.flows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_holds_every_event_as_a_cloudevent_on_sqlite() {
    the_feed_holds_every_event_as_a_cloudevent(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_holds_every_event_as_a_cloudevent_on_postgres() {
    let Some(url) = postgres::fresh_database("events feed on PostgreSQL").await else {
        return;
    };
    the_feed_holds_every_event_as_a_cloudevent(Some(url.clone())).await;
    postgres::drop_database(&url).await;
}

#[test]
fn subjects_are_one_per_type_under_the_prefix() {
    assert_eq!(
        subject("junction", "dev.junction.run.completed"),
        "junction.run.completed"
    );
    assert_eq!(
        subject("acme.junction", "deal.propertyChange"),
        "acme.junction.webhook.deal.propertyChange"
    );
    // Wildcards, spaces and empty tokens are not subjects.
    assert_eq!(subject("j", "a b.>.*..c"), "j.webhook.a_b._._._.c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_reaches_jetstream_once_across_a_crash() {
    let Ok(nats) = std::env::var("JUNCTION_TEST_NATS_URL") else {
        eprintln!("SKIPPED (events to NATS JetStream): JUNCTION_TEST_NATS_URL is not set");
        return;
    };
    let h = host(None).await;
    let mut runs = Vec::new();
    for n in 0..20 {
        runs.push(h.start("ok", json!({"n": n})).await);
    }
    for run in &runs {
        h.ended(run, "completed").await;
    }
    let store = h.flows.runtime().store().clone();
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let settings = EventSettings {
        nats_url: Some(nats.clone()),
        subject_prefix: format!("jtest{}", &unique[..12]),
        stream: format!("JTEST_{}", &unique[..12]),
        ..EventSettings::default()
    };
    let rows = store.unpublished_events(1000).await.unwrap();
    // Each run: started, two steps, completed.
    assert_eq!(rows.len(), runs.len() * 4);

    // A host publishes everything, JetStream acknowledges, and the host dies
    // before it marks a row: nothing is marked.
    let first = Publisher::connect(store.clone(), settings.clone(), &nats, None)
        .await
        .unwrap();
    let acked = first.publish(&rows).await.unwrap();
    assert_eq!(acked.len(), rows.len());
    drop(first);
    assert_eq!(
        store.unpublished_events(1000).await.unwrap().len(),
        rows.len()
    );

    // The host comes back: it publishes every row again, and marks them.
    let second = Publisher::connect(store.clone(), settings.clone(), &nats, None)
        .await
        .unwrap();
    let mut marked = 0;
    loop {
        let n = second.publish_pending().await.unwrap();
        if n == 0 {
            break;
        }
        marked += n;
    }
    assert_eq!(marked, rows.len());
    assert!(store.unpublished_events(1000).await.unwrap().is_empty());

    // The stream holds each event once, under its subject, with its id.
    let client = async_nats::connect(&nats).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(&settings.stream).await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    assert_eq!(
        state.messages,
        rows.len() as u64,
        "JetStream de-duplicated the republish"
    );
    let schema = cloudevents_schema();
    let mut seen = BTreeMap::new();
    for seq in state.first_sequence..=state.last_sequence {
        let message = stream.get_raw_message(seq).await.unwrap();
        let event: Value = serde_json::from_slice(&message.payload).unwrap();
        assert_cloudevent(&schema, &event);
        let id = message
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .unwrap()
            .to_string();
        assert_eq!(id, event["id"].as_str().unwrap());
        let expected = subject(&settings.subject_prefix, event["type"].as_str().unwrap());
        assert_eq!(message.subject.as_str(), expected);
        assert!(
            seen.insert(id, event).is_none(),
            "an id twice in the stream"
        );
    }
    for row in &rows {
        assert!(
            seen.contains_key(&message_id(&row.event)),
            "{:?} not in the stream",
            row.event
        );
    }
    for run in &runs {
        let completions = seen
            .values()
            .filter(|e| e["subject"] == run.as_str() && e["type"] == "dev.junction.run.completed")
            .count();
        assert_eq!(completions, 1, "run {run}");
    }
    js.delete_stream(&settings.stream).await.unwrap();
}
