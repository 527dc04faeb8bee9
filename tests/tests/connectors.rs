//! The shipped Salesforce, HubSpot and NetSuite connectors, uploaded as the
//! packages Junction ships (manifest checked against the component) and
//! called through the host against their stand-ins: the operations, paging
//! through streams with the `read` operation, every error case the systems
//! answer with, HubSpot's signed webhooks and NetSuite's idempotency keys.
//!
//! One section per connector; each test has its own host and stand-in.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use junction_runtime::engine::Limits;
use junction_runtime::runtime::{CallError, CallOptions, ConnectionSpec, PluginError, Runtime};
use junction_standins::Misbehaviour;
use junction_store::Auth;
use junction_tests::{runtime_with, test_config, test_limits};
use serde_json::{Value, json};

/// Compiled code shared by the tests of this file: the first one to load
/// the plugins compiles them, the others read the cache.
fn cache_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("connectors-compile-cache")
}

static LOADING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A host with the three connectors uploaded as their shipped packages.
async fn host() -> Arc<Runtime> {
    let rt = runtime_with(&{
        let mut config = test_config(Limits {
            deadline_ms: 10_000,
            ..test_limits()
        });
        config.runtime.cache_dir = Some(cache_dir());
        config
    })
    .await;
    let _first = LOADING.lock().await;
    use junction::shipped::*;
    for (manifest, wasm) in [
        (SALESFORCE_MANIFEST, SALESFORCE_CONNECTOR),
        (HUBSPOT_MANIFEST, HUBSPOT_CONNECTOR),
        (NETSUITE_MANIFEST, NETSUITE_CONNECTOR),
    ] {
        let package = junction_registry::Package::new(manifest, wasm);
        rt.upload_package(&package.to_bytes(), "tests")
            .await
            .unwrap_or_else(|e| panic!("uploading {manifest}: {e}"));
    }
    rt
}

/// Connects `plugin` as `name` to a stand-in at `base_url` with a bearer token.
async fn connect(
    rt: &Runtime,
    name: &str,
    plugin: &str,
    config: &[(&str, &str)],
    token: &str,
    host: &str,
) {
    let spec = ConnectionSpec {
        plugin: plugin.into(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        auth: Some(Auth::Bearer {
            token: token.into(),
        }),
        allowed_hosts: vec![host.into()],
        private_hosts: vec![host.into()],
        ..ConnectionSpec::default()
    };
    rt.put_connection(name, spec).await.unwrap();
}

async fn call_with(
    rt: &Runtime,
    connection: &str,
    operation: &str,
    input: Value,
    options: CallOptions,
) -> Result<Value, CallError> {
    let output = rt
        .invoke(connection, operation, &input.to_string(), options)
        .await?;
    Ok(serde_json::from_str(&output.json).unwrap())
}

async fn call(
    rt: &Runtime,
    connection: &str,
    operation: &str,
    input: Value,
) -> Result<Value, CallError> {
    call_with(rt, connection, operation, input, CallOptions::default()).await
}

/// The plugin's error case of a failed call.
fn plugin_error(result: Result<Value, CallError>) -> PluginError {
    match result {
        Err(CallError::Plugin(error)) => error,
        other => panic!("expected a plugin error, got {other:?}"),
    }
}

/// Reads every page of `stream` from `cursor` with the `read` operation:
/// the records of each page, and the cursor after the last one.
async fn read_all(
    rt: &Runtime,
    connection: &str,
    stream: &str,
    mut cursor: Option<String>,
) -> (Vec<Vec<Value>>, Option<String>) {
    let mut pages = Vec::new();
    for _ in 0..20 {
        let page = call(
            rt,
            connection,
            "read",
            json!({"stream": stream, "cursor": cursor}),
        )
        .await
        .unwrap();
        pages.push(page["records"].as_array().unwrap().clone());
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if page["done"] == true {
            return (pages, cursor);
        }
        assert!(cursor.is_some(), "a page that is not the last has a cursor");
    }
    panic!("stream {stream} did not end within 20 pages");
}

/// Plays the faults every stand-in can play on a call of `operation` and
/// checks the case each maps to: a refused token is unauthorized and a
/// server error unavailable, each naming the system's error code, and a 429
/// is rate limited after the `Retry-After` it carried. The rate limit comes
/// last: the host then holds the connection back for that long.
async fn check_faults(
    rt: &Runtime,
    connection: &str,
    (operation, input): (&str, Value),
    misbehave: impl Fn(Misbehaviour),
    [refused_code, failing_code]: [&str; 2],
) {
    let call_once = async || plugin_error(call(rt, connection, operation, input.clone()).await);
    misbehave(Misbehaviour::Unauthorized { times: 1 });
    let refused = call_once().await;
    assert!(
        matches!(&refused, PluginError::Unauthorized(m) if m.contains(refused_code)),
        "{refused:?}"
    );
    misbehave(Misbehaviour::ServerError { times: 1 });
    let failing = call_once().await;
    assert!(
        matches!(&failing, PluginError::Unavailable(m) if m.contains(failing_code)),
        "{failing:?}"
    );
    misbehave(Misbehaviour::RateLimited {
        times: 1,
        retry_after_secs: 3,
    });
    let limited = call_once().await;
    assert!(
        matches!(limited, PluginError::RateLimited(3000)),
        "{limited:?}"
    );
}

fn field<'a>(records: &'a [Value], name: &str) -> Vec<&'a str> {
    records.iter().map(|r| r[name].as_str().unwrap()).collect()
}

mod salesforce {
    use super::*;
    use junction_standins::SalesforceStandin;

    const TOKEN: &str = "00D5g000004Xyz!AQ4AQ.stand-in-access-token";

    async fn setup() -> (Arc<Runtime>, SalesforceStandin) {
        let rt = host().await;
        let sf = SalesforceStandin::start(TOKEN).await.unwrap();
        connect(
            &rt,
            "sf",
            "salesforce",
            &[("instance_url", &sf.base_url())],
            TOKEN,
            &sf.host(),
        )
        .await;
        (rt, sf)
    }

    async fn create(rt: &Runtime, sobject: &str, fields: Value) -> String {
        let saved = call(
            rt,
            "sf",
            "create-record",
            json!({"sobject": sobject, "fields": fields}),
        )
        .await
        .unwrap();
        assert_eq!(saved["created"], true);
        saved["id"].as_str().unwrap().to_owned()
    }

    fn opportunity(name: &str, stage: &str) -> Value {
        json!({"Name": name, "StageName": stage, "CloseDate": "2026-11-20", "Amount": 120000})
    }

    #[tokio::test]
    async fn records_are_created_read_updated_and_upserted() {
        let (rt, sf) = setup().await;
        rt.check("sf").await.unwrap();

        let id = create(
            &rt,
            "Account",
            json!({"Name": "Acme", "Industry": "Energy"}),
        )
        .await;
        let account = call(
            &rt,
            "sf",
            "get-record",
            json!({"sobject": "Account", "id": id}),
        )
        .await
        .unwrap();
        assert_eq!(account["Name"], "Acme");
        assert_eq!(account["attributes"]["type"], "Account");

        let updated = call(
            &rt,
            "sf",
            "update-record",
            json!({"sobject": "Account", "id": id, "fields": {"Industry": "Utilities"}}),
        )
        .await
        .unwrap();
        assert_eq!(updated, json!({"id": id}));
        assert_eq!(sf.records("Account")[0]["Industry"], "Utilities");

        let upsert = |name: &str| {
            json!({"sobject": "Account", "external_id_field": "External_Id__c",
                   "external_id": "CRM 42", "fields": {"Name": name}})
        };
        let first = call(&rt, "sf", "upsert-record", upsert("Globex"))
            .await
            .unwrap();
        assert_eq!(first["created"], true);
        let second = call(&rt, "sf", "upsert-record", upsert("Globex Corp"))
            .await
            .unwrap();
        assert_eq!(second, json!({"id": first["id"], "created": false}));
        // Salesforce answers an updating upsert 200 with the id (API v46.0
        // and later): the connector takes it from there, with no query.
        let last = sf.requests().pop().unwrap();
        assert_eq!(last.method, "PATCH", "{last:?}");
        assert!(
            sf.requests().iter().all(|r| !r
                .query
                .as_deref()
                .unwrap_or("")
                .contains("External_Id__c")),
            "{:?}",
            sf.requests()
        );
        let accounts = sf.records("Account");
        assert_eq!(accounts.len(), 2);
        assert_eq!(accounts[1]["Name"], "Globex Corp");
        assert_eq!(accounts[1]["External_Id__c"], "CRM 42");
    }

    #[tokio::test]
    async fn composite_runs_subrequests_all_or_none() {
        let (rt, sf) = setup().await;
        let request = |opportunity_name: Value| {
            json!({"allOrNone": true, "compositeRequest": [
                {"method": "POST", "url": "sobjects/Account", "referenceId": "account",
                 "body": {"Name": "Initech"}},
                {"method": "POST", "url": "/services/data/v60.0/sobjects/Opportunity",
                 "referenceId": "deal",
                 "body": {"Name": opportunity_name, "StageName": "Closed Won",
                          "CloseDate": "2026-11-20", "AccountId": "@{account.id}"}}
            ]})
        };
        let done = call(&rt, "sf", "composite", request(json!("Initech rollout")))
            .await
            .unwrap();
        let statuses: Vec<_> = done["compositeResponse"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["httpStatusCode"].as_u64().unwrap())
            .collect();
        assert_eq!(statuses, [201, 201]);
        let account_id = done["compositeResponse"][0]["body"]["id"].as_str().unwrap();
        assert_eq!(sf.records("Opportunity")[0]["AccountId"], account_id);

        let failed = plugin_error(call(&rt, "sf", "composite", request(Value::Null)).await);
        let PluginError::InvalidInput(message) = failed else {
            panic!("expected invalid input, got {failed:?}");
        };
        assert!(message.contains("subrequest `deal`"), "{message}");
        assert!(
            message.contains("REQUIRED_FIELD_MISSING on Name"),
            "{message}"
        );
        assert_eq!(
            sf.records("Account").len(),
            1,
            "the failed request's account was rolled back"
        );
    }

    #[tokio::test]
    async fn query_pages_follow_next_records_url() {
        let (rt, sf) = setup().await;
        sf.set_query_batch_size(Some(2));
        for name in ["A1", "A2", "A3", "A4", "A5"] {
            create(&rt, "Account", json!({"Name": name})).await;
        }
        let mut page = call(
            &rt,
            "sf",
            "query",
            json!({"soql": "SELECT Id, Name FROM Account"}),
        )
        .await
        .unwrap();
        let mut names = Vec::new();
        let mut pages = 0;
        loop {
            pages += 1;
            assert_eq!(page["totalSize"], 5);
            names.extend(
                field(page["records"].as_array().unwrap(), "Name")
                    .into_iter()
                    .map(str::to_owned),
            );
            let Some(next) = page["nextRecordsUrl"].as_str() else {
                assert_eq!(page["done"], true);
                break;
            };
            page = call(&rt, "sf", "query", json!({"nextRecordsUrl": next}))
                .await
                .unwrap();
        }
        assert_eq!(pages, 3);
        assert_eq!(names, ["A1", "A2", "A3", "A4", "A5"]);
    }

    /// Waits until the wall clock is in a later second than `after`.
    async fn next_second(after: SystemTime) {
        let second = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs();
        while second(SystemTime::now()) <= second(after) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn closed_won_stream_pages_then_resumes_from_the_last_change() {
        let (rt, sf) = setup().await;
        sf.set_query_batch_size(Some(2));
        create(&rt, "Opportunity", opportunity("Early", "Closed Won")).await;
        // Salesforce keeps times to the second: the later records change in a later one.
        next_second(SystemTime::now()).await;
        create(&rt, "Opportunity", opportunity("Open", "Prospecting")).await;
        create(&rt, "Opportunity", opportunity("Late 1", "Closed Won")).await;
        create(&rt, "Opportunity", opportunity("Late 2", "Closed Won")).await;

        let (pages, cursor) = read_all(&rt, "sf", "closed-won-opportunities", None).await;
        let names: Vec<Vec<&str>> = pages.iter().map(|p| field(p, "Name")).collect();
        assert_eq!(names, [vec!["Early", "Late 1"], vec!["Late 2"]]);

        // From the cursor: the changes of the last second read (at least once), not before.
        let (pages, cursor) = read_all(&rt, "sf", "closed-won-opportunities", cursor).await;
        let names: Vec<Vec<&str>> = pages.iter().map(|p| field(p, "Name")).collect();
        assert_eq!(names, [vec!["Late 1", "Late 2"]]);

        next_second(SystemTime::now()).await;
        create(&rt, "Opportunity", opportunity("Newest", "Closed Won")).await;
        let (pages, _) = read_all(&rt, "sf", "closed-won-opportunities", cursor).await;
        let names: Vec<&str> = pages.iter().flat_map(|p| field(p, "Name")).collect();
        assert_eq!(names, ["Late 1", "Late 2", "Newest"]);

        let bad = plugin_error(
            call(
                &rt,
                "sf",
                "read",
                json!({"stream": "closed-won-opportunities", "cursor": "page 2"}),
            )
            .await,
        );
        assert!(
            matches!(bad, PluginError::InvalidInput(m) if m.contains("not one this connector returned"))
        );
    }

    #[tokio::test]
    async fn every_error_maps_to_its_case() {
        let (rt, sf) = setup().await;
        let missing = plugin_error(
            call(
                &rt,
                "sf",
                "create-record",
                json!({"sobject": "Account", "fields": {"Industry": "Energy"}}),
            )
            .await,
        );
        assert!(
            matches!(&missing, PluginError::InvalidInput(m) if m.contains("REQUIRED_FIELD_MISSING on Name")),
            "{missing:?}"
        );

        create(
            &rt,
            "Account",
            json!({"Name": "Acme", "External_Id__c": "A-1"}),
        )
        .await;
        let duplicate = plugin_error(call(&rt, "sf", "create-record", json!({"sobject": "Account", "fields": {"Name": "Acme 2", "External_Id__c": "A-1"}})).await);
        assert!(
            matches!(&duplicate, PluginError::Conflict(m) if m.contains("DUPLICATE_VALUE")),
            "{duplicate:?}"
        );

        let unknown = plugin_error(
            call(
                &rt,
                "sf",
                "get-record",
                json!({"sobject": "Account", "id": "001000000000000AAA"}),
            )
            .await,
        );
        assert!(
            matches!(&unknown, PluginError::NotFound(m) if m.contains("NOT_FOUND")),
            "{unknown:?}"
        );

        let malformed =
            plugin_error(call(&rt, "sf", "query", json!({"soql": "SELECT FROM Account"})).await);
        assert!(
            matches!(&malformed, PluginError::InvalidInput(m) if m.contains("MALFORMED_QUERY")),
            "{malformed:?}"
        );

        check_faults(
            &rt,
            "sf",
            ("query", json!({"soql": "SELECT Id FROM Account"})),
            |m| sf.misbehave(m),
            ["INVALID_SESSION_ID", "UNKNOWN_EXCEPTION"],
        )
        .await;
    }

    #[tokio::test]
    async fn a_used_up_api_allocation_is_a_rate_limit() {
        let (rt, sf) = setup().await;
        let (_, max) = sf.api_usage();
        sf.set_api_usage(max, max);
        let limited = plugin_error(
            call(
                &rt,
                "sf",
                "query",
                json!({"soql": "SELECT Id FROM Account"}),
            )
            .await,
        );
        assert!(
            matches!(limited, PluginError::RateLimited(60_000)),
            "{limited:?}"
        );
        let request = sf.requests().pop().unwrap();
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
}

mod hubspot {
    use super::*;
    use junction_runtime::inbound::InboundWebhook;
    use junction_runtime::webhooks::Scheme;
    use junction_standins::HubspotStandin;
    use junction_standins::hubspot::{property_change_event, webhook_delivery};
    use junction_store::WebhookSettings;

    const TOKEN: &str = "pat-na1-11111111-2222-3333-4444-555555555555";
    const WEBHOOK_SECRET: &str = "hubspot-app-client-secret";
    const PUBLIC_URL: &str = "https://junction.example.com/v1/webhooks/hubspot";

    async fn setup(page_size: &str) -> (Arc<Runtime>, HubspotStandin) {
        let rt = host().await;
        let hs = HubspotStandin::start(TOKEN).await.unwrap();
        let spec = ConnectionSpec {
            plugin: "hubspot".into(),
            config: BTreeMap::from([
                ("base_url".into(), hs.base_url()),
                ("page_size".into(), page_size.into()),
            ]),
            auth: Some(Auth::Bearer {
                token: TOKEN.into(),
            }),
            allowed_hosts: vec![hs.host()],
            private_hosts: vec![hs.host()],
            webhook: Some(WebhookSettings {
                scheme: Scheme::HubspotV3,
                secret: WEBHOOK_SECRET.into(),
            }),
            ..ConnectionSpec::default()
        };
        rt.put_connection("hs", spec).await.unwrap();
        (rt, hs)
    }

    /// Creates an object in the stand-in as a HubSpot user would; returns its id.
    async fn seed(hs: &HubspotStandin, kind: &str, properties: Value) -> String {
        seed_with(hs, kind, json!({ "properties": properties })).await
    }

    /// [`seed`] with the whole body of HubSpot's create, e.g. with `associations`.
    async fn seed_with(hs: &HubspotStandin, kind: &str, body: Value) -> String {
        let created: Value = reqwest::Client::new()
            .post(format!("{}/crm/v3/objects/{kind}", hs.base_url()))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        created["id"].as_str().unwrap().to_owned()
    }

    async fn deal(hs: &HubspotStandin, name: &str, stage: &str) -> String {
        seed(
            hs,
            "deals",
            json!({"dealname": name, "dealstage": stage, "amount": "120000"}),
        )
        .await
    }

    fn names(records: &[Value]) -> Vec<&str> {
        records
            .iter()
            .map(|r| {
                r["properties"]["dealname"]
                    .as_str()
                    .or(r["properties"]["name"].as_str())
                    .unwrap()
            })
            .collect()
    }

    #[tokio::test]
    async fn deals_and_companies_are_read_searched_and_updated() {
        let (rt, hs) = setup("100").await;
        rt.check("hs").await.unwrap();
        let won = deal(&hs, "Acme rollout", "closedwon").await;
        let open = deal(&hs, "Globex pilot", "contractsent").await;
        let company = seed(
            &hs,
            "companies",
            json!({"name": "Acme", "domain": "acme.example"}),
        )
        .await;

        let got = call(
            &rt,
            "hs",
            "get-deal",
            json!({"id": won, "properties": ["dealname", "dealstage"]}),
        )
        .await
        .unwrap();
        assert_eq!(got["id"], won.as_str());
        assert_eq!(got["properties"]["dealname"], "Acme rollout");
        assert_eq!(got["properties"]["dealstage"], "closedwon");
        let got = call(&rt, "hs", "get-company", json!({"id": company}))
            .await
            .unwrap();
        assert_eq!(got["properties"]["domain"], "acme.example");

        // A deal created with an association to the company: the deal -> company link.
        let linked = seed_with(
            &hs,
            "deals",
            json!({
                "properties": {"dealname": "Acme phase 2", "dealstage": "closedwon"},
                "associations": [{"to": {"id": company}, "types": [
                    {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]}]
            }),
        )
        .await;
        let got = call(
            &rt,
            "hs",
            "get-deal",
            json!({"id": linked, "associations": ["companies"]}),
        )
        .await
        .unwrap();
        assert_eq!(
            got["associations"]["companies"]["results"][0]["id"],
            company.as_str()
        );

        let found = call(
            &rt,
            "hs",
            "search-deals",
            json!({"filterGroups": [{"filters": [
            {"propertyName": "dealstage", "operator": "EQ", "value": "closedwon"}]}]}),
        )
        .await
        .unwrap();
        assert_eq!(found["total"], 2);
        assert_eq!(
            names(found["results"].as_array().unwrap()),
            ["Acme rollout", "Acme phase 2"]
        );

        let batch = call(
            &rt,
            "hs",
            "batch-read-deals",
            json!({
            "inputs": [{"id": won}, {"id": "1"}, {"id": open}], "properties": ["dealname"]}),
        )
        .await
        .unwrap();
        assert_eq!(
            names(batch["results"].as_array().unwrap()),
            ["Acme rollout", "Globex pilot"]
        );
        assert_eq!(batch["errors"][0]["context"]["ids"], json!(["1"]));

        let updated = call(
            &rt,
            "hs",
            "update-deal",
            json!({"id": open, "properties": {"dealstage": "closedwon"}}),
        )
        .await
        .unwrap();
        assert_eq!(updated["properties"]["dealstage"], "closedwon");
        assert_eq!(hs.deals()[1]["properties"]["dealstage"], "closedwon");
    }

    #[tokio::test]
    async fn streams_page_with_after() {
        let (rt, hs) = setup("2").await;
        for (name, stage) in [
            ("D1", "closedwon"),
            ("D2", "qualifiedtobuy"),
            ("D3", "closedwon"),
            ("D4", "closedwon"),
            ("D5", "closedlost"),
        ] {
            deal(&hs, name, stage).await;
        }
        seed(&hs, "companies", json!({"name": "Acme"})).await;

        let (pages, cursor) = read_all(&rt, "hs", "deals", None).await;
        let pages: Vec<Vec<&str>> = pages.iter().map(|p| names(p)).collect();
        assert_eq!(pages, [vec!["D1", "D2"], vec!["D3", "D4"], vec!["D5"]]);
        assert_eq!(cursor, None);

        let (pages, _) = read_all(&rt, "hs", "closed-won-deals", None).await;
        let pages: Vec<Vec<&str>> = pages.iter().map(|p| names(p)).collect();
        assert_eq!(pages, [vec!["D1", "D3"], vec!["D4"]]);

        let (pages, _) = read_all(&rt, "hs", "companies", None).await;
        assert_eq!(pages.concat()[0]["properties"]["name"], "Acme");

        // A stream's records carry the properties a deal transform reads.
        let first = call(&rt, "hs", "read", json!({"stream": "deals"}))
            .await
            .unwrap();
        let properties = &first["records"][0]["properties"];
        assert_eq!(properties["amount"], "120000");
        assert_eq!(properties["pipeline"], "default");
    }

    /// The host's own `read` (the connector's `read` export, which sync
    /// jobs use) and `GET /v1/connections/{name}/streams/{stream}` page as
    /// the `read` operation does; a cursor round-trips through the query.
    #[tokio::test]
    async fn the_read_export_and_the_streams_endpoint_page_with_after() {
        let (rt, hs) = setup("2").await;
        for name in ["D1", "D2", "D3"] {
            deal(&hs, name, "closedwon").await;
        }
        let first = rt
            .read("hs", "deals", None, CallOptions::default())
            .await
            .unwrap();
        assert!(!first.done);
        let record: Value = serde_json::from_str(&first.records[1]).unwrap();
        assert_eq!(record["properties"]["dealname"], "D2");
        let cursor = first.next_cursor.expect("a cursor to read on from");
        let last = rt
            .read("hs", "deals", Some(&cursor), CallOptions::default())
            .await
            .unwrap();
        assert!(last.done);
        assert_eq!(last.records.len(), 1);
        let unknown = rt
            .read("hs", "tickets", None, CallOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&unknown, CallError::Plugin(PluginError::InvalidInput(m)) if m.contains("deals, companies")),
            "{unknown:?}"
        );

        let mut config = junction::config::Config::default();
        config.api.tokens = BTreeMap::from([(
            "ops".into(),
            junction::config::Token {
                token: "ops-token".into(),
                scope: junction::config::Scope::Invoker,
            },
        )]);
        let app = junction_api::router(rt.clone(), &config.api, config.flows.options());
        let read = |uri: String| {
            let app = app.clone();
            async move { junction_tests::openapi::call(&app, Some("ops-token"), "GET", &uri, "").await }
        };
        let (status, page) = read("/v1/connections/hs/streams/deals".into()).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["plugin"], "hubspot");
        assert_eq!(page["records"][0]["properties"]["dealname"], "D1");
        let cursor = page["next_cursor"].as_str().unwrap().to_string();
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("cursor", &cursor)
            .finish();
        let (status, page) = read(format!("/v1/connections/hs/streams/deals?{query}")).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["done"], true);
        assert_eq!(page["records"][0]["properties"]["dealname"], "D3");
        let (status, refused) = read("/v1/connections/hs/streams/tickets".into()).await;
        assert_eq!(status, 422, "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unknown stream"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn every_error_maps_to_its_case() {
        let (rt, hs) = setup("100").await;
        let id = deal(&hs, "Acme rollout", "contractsent").await;

        let invalid = plugin_error(
            call(
                &rt,
                "hs",
                "update-deal",
                json!({"id": id, "properties": {"dealstage": "won-ish"}}),
            )
            .await,
        );
        assert!(
            matches!(&invalid, PluginError::InvalidInput(m) if m.contains("HubSpot refused dealstage (VALIDATION_ERROR)")),
            "{invalid:?}"
        );

        let unknown = plugin_error(call(&rt, "hs", "get-deal", json!({"id": "42"})).await);
        assert!(
            matches!(&unknown, PluginError::NotFound(m) if m.contains("OBJECT_NOT_FOUND")),
            "{unknown:?}"
        );

        check_faults(
            &rt,
            "hs",
            ("get-deal", json!({"id": id})),
            |m| hs.misbehave(m),
            ["INVALID_AUTHENTICATION", "INTERNAL_ERROR"],
        )
        .await;
    }

    #[tokio::test]
    async fn signed_deliveries_become_events() {
        let (rt, _hs) = setup("100").await;
        let won = property_change_event("deal", 9_876_543_201, "dealstage", "closedwon");
        let created = json!({
            "eventId": 7, "subscriptionId": 99, "portalId": 62515, "appId": 1160452,
            "occurredAt": 1_714_555_800_123u64, "subscriptionType": "company.creation",
            "attemptNumber": 0, "objectId": 555, "changeSource": "CRM"
        });
        let delivery = webhook_delivery(WEBHOOK_SECRET, PUBLIC_URL, &[won.clone(), created]);
        let headers: Vec<(String, String)> = delivery
            .headers()
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect();
        let request = InboundWebhook {
            method: "POST",
            url: &delivery.uri,
            path: "/v1/webhooks/hubspot",
            headers: &headers,
            body: delivery.body.as_bytes(),
        };
        let (events, _) = rt
            .handle_webhook("hs", request, SystemTime::now())
            .await
            .unwrap();
        let summary: Vec<(&str, &str, Option<&str>)> = events
            .iter()
            .map(|e| (e.id.as_str(), e.event_type.as_str(), e.subject.as_deref()))
            .collect();
        let event_id = format!("2473812-{}", won["eventId"]);
        assert_eq!(
            summary,
            [
                (event_id.as_str(), "deal.propertyChange", Some("9876543201")),
                (
                    format!("{event_id}-closed_won").as_str(),
                    "deal.closed_won",
                    Some("9876543201")
                ),
                ("99-7", "company.creation", Some("555")),
            ]
        );
        assert!(events.iter().all(|e| e.source == "hubspot/62515"));
        assert_eq!(events[1].data, won);
        assert_eq!(events[2].time, "2024-05-01T09:30:00.123Z");

        // A delivery whose body was changed after signing never reaches the plugin.
        let tampered = delivery.body.replace("closedwon", "closedlost");
        let request = InboundWebhook {
            body: tampered.as_bytes(),
            ..request
        };
        assert!(
            rt.handle_webhook("hs", request, SystemTime::now())
                .await
                .is_err()
        );
    }
}

mod netsuite {
    use super::*;
    use junction_standins::NetsuiteStandin;

    const TOKEN: &str = "netsuite-oauth2-access-token";

    async fn setup() -> (Arc<Runtime>, NetsuiteStandin) {
        let rt = host().await;
        let ns = NetsuiteStandin::start(TOKEN).await.unwrap();
        connect(
            &rt,
            "ns",
            "netsuite",
            &[("base_url", &ns.base_url())],
            TOKEN,
            &ns.host(),
        )
        .await;
        (rt, ns)
    }

    fn keyed(key: &str) -> CallOptions {
        CallOptions {
            idempotency_key: Some(key.into()),
            ..CallOptions::default()
        }
    }

    async fn customer(rt: &Runtime) -> String {
        let saved = call(
            rt,
            "ns",
            "upsert-customer",
            json!({"external_id": "CRM-42", "fields": {"companyName": "Acme"}}),
        )
        .await
        .unwrap();
        saved["id"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn customers_are_upserted_and_jobs_created_for_them() {
        let (rt, ns) = setup().await;
        rt.check("ns").await.unwrap();
        let id = customer(&rt).await;
        assert_eq!(id, "1001");
        let again = call(
            &rt,
            "ns",
            "upsert-customer",
            json!({"external_id": "CRM-42", "fields": {"companyName": "Acme Corp"}}),
        )
        .await
        .unwrap();
        assert_eq!(again, json!({"id": "1001", "external_id": "CRM-42"}));
        assert_eq!(ns.customers().len(), 1);

        let job = call(
            &rt,
            "ns",
            "create-job",
            json!({"customer_id": id, "fields": {"companyName": "Acme rollout"}}),
        )
        .await
        .unwrap();
        assert_eq!(job, json!({"id": "2001"}));
        let got = call(&rt, "ns", "get-job", json!({"id": "2001"}))
            .await
            .unwrap();
        assert_eq!(got["parent"]["id"], "1001");
        assert_eq!(got["companyName"], "Acme rollout");
        let got = call(&rt, "ns", "get-customer", json!({"external_id": "CRM-42"}))
            .await
            .unwrap();
        assert_eq!(got["companyName"], "Acme Corp");

        let upserted = call(&rt, "ns", "create-job", json!({"customer_id": id, "external_id": "PRJ 7", "fields": {"companyName": "Phase 2"}}))
            .await
            .unwrap();
        assert_eq!(upserted, json!({"id": "2002", "external_id": "PRJ 7"}));
        assert_eq!(ns.jobs()[1]["externalId"], "PRJ 7");
    }

    #[tokio::test]
    async fn a_retried_job_is_upserted_by_an_external_id_from_its_key_and_made_once() {
        let (rt, ns) = setup().await;
        let id = customer(&rt).await;
        let job = json!({"customer_id": id, "fields": {"companyName": "Acme rollout"}});
        let first = call_with(&rt, "ns", "create-job", job.clone(), keyed("run-7:job"))
            .await
            .unwrap();
        let retry = call_with(&rt, "ns", "create-job", job.clone(), keyed("run-7:job"))
            .await
            .unwrap();
        assert_eq!(first, retry);
        assert_eq!(ns.jobs().len(), 1);

        // Synchronous writes are upserts by external id, the idempotency
        // NetSuite honours; its idempotency header counts only on
        // asynchronous requests, so none is sent.
        let writes: Vec<_> = ns
            .requests()
            .into_iter()
            .filter(|r| r.path.contains("/job"))
            .collect();
        assert_eq!(writes.len(), 2);
        assert!(writes.iter().all(|r| r.method == "PUT"), "{writes:?}");
        assert_eq!(
            writes[0].path, writes[1].path,
            "a retry names the same record"
        );
        let external_id = first["external_id"].as_str().unwrap();
        assert!(
            external_id.starts_with("junction-") && external_id.len() == 45,
            "{first}"
        );
        assert!(writes[0].path.ends_with(&format!("/job/eid:{external_id}")));
        assert!(
            ns.requests()
                .iter()
                .all(|r| r.header("x-netsuite-idempotency-key").is_none())
        );

        let other = call_with(&rt, "ns", "create-job", job.clone(), keyed("run-8:job"))
            .await
            .unwrap();
        assert_eq!(other["id"], "2002");
        // Without an external id or a key, a job is a plain create.
        let plain = call(&rt, "ns", "create-job", job).await.unwrap();
        assert_eq!(plain, json!({"id": "2003"}));
        assert_eq!(ns.requests().last().unwrap().method, "POST");
    }

    #[tokio::test]
    async fn invoices_are_created_once_per_key() {
        let (rt, ns) = setup().await;
        let customer = customer(&rt).await;
        let job = call(
            &rt,
            "ns",
            "create-job",
            json!({"customer_id": customer, "fields": {"companyName": "Acme rollout"}}),
        )
        .await
        .unwrap();
        let invoice = |lines: Value| {
            json!({"fields": {"entity": {"id": customer}, "job": {"id": job["id"]},
                              "tranDate": "2026-12-01", "item": {"items": lines}}})
        };
        let lines = json!([{"item": {"id": "501"}, "quantity": 7.5, "rate": 150.0,
                            "description": "Consulting, week 48"}]);
        let first = call_with(
            &rt,
            "ns",
            "create-invoice",
            invoice(lines.clone()),
            keyed("run-9:invoice"),
        )
        .await
        .unwrap();
        let retry = call_with(
            &rt,
            "ns",
            "create-invoice",
            invoice(lines),
            keyed("run-9:invoice"),
        )
        .await
        .unwrap();
        assert_eq!(first["id"], "3001");
        assert_eq!(retry, first);
        assert_eq!(
            ns.invoices().len(),
            1,
            "a retried invoice is one invoice on the real service too: it is upserted by external id"
        );
        assert_eq!(ns.invoices()[0]["externalId"], first["external_id"]);
        assert_eq!(ns.invoices()[0]["item"]["items"][0]["quantity"], 7.5);

        let empty = plugin_error(
            call(
                &rt,
                "ns",
                "create-invoice",
                invoice(json!([{"item": {"id": "501"}}])),
            )
            .await,
        );
        assert!(
            matches!(&empty, PluginError::InvalidInput(m) if m.contains("item.items[0]:")),
            "{empty:?}"
        );
    }

    #[tokio::test]
    async fn every_error_maps_to_its_case() {
        let (rt, ns) = setup().await;
        let id = customer(&rt).await;

        let missing = plugin_error(
            call(
                &rt,
                "ns",
                "create-job",
                json!({"customer_id": id, "fields": {}}),
            )
            .await,
        );
        assert!(
            matches!(&missing, PluginError::InvalidInput(m) if m.contains("companyName: Please enter value(s) for: Company Name (USER_ERROR)")),
            "{missing:?}"
        );
        let orphan = plugin_error(
            call(
                &rt,
                "ns",
                "create-job",
                json!({"customer_id": "9999", "fields": {"companyName": "X"}}),
            )
            .await,
        );
        assert!(
            matches!(&orphan, PluginError::InvalidInput(m) if m.contains("parent:") && m.contains("INVALID_KEY_OR_REF")),
            "{orphan:?}"
        );

        let job = json!({"customer_id": id, "fields": {"companyName": "X", "externalId": "JOB-1"}});
        call(&rt, "ns", "create-job", job.clone()).await.unwrap();
        let duplicate = plugin_error(call(&rt, "ns", "create-job", job).await);
        assert!(
            matches!(&duplicate, PluginError::Conflict(m) if m.contains("DUP_RCRD")),
            "{duplicate:?}"
        );

        let unknown = plugin_error(call(&rt, "ns", "get-customer", json!({"id": "9999"})).await);
        assert!(
            matches!(&unknown, PluginError::NotFound(m) if m.contains("NONEXISTENT_ID")),
            "{unknown:?}"
        );

        check_faults(
            &rt,
            "ns",
            ("get-customer", json!({"id": id})),
            |m| ns.misbehave(m),
            ["INVALID_LOGIN", "UNEXPECTED_ERROR"],
        )
        .await;
    }
}
