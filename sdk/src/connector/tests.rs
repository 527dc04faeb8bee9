use super::*;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize, JsonSchema)]
struct Add {
    a: i64,
    b: i64,
}

#[derive(Serialize, JsonSchema)]
struct Sum {
    sum: i64,
}

fn add(_: &Context, input: Add) -> Result<Sum> {
    Ok(Sum {
        sum: input.a + input.b,
    })
}

fn operations() -> Operations {
    Operations::new()
        .with(Operation::new("add", "Adds two numbers", add).idempotent())
        .with(
            Operation::new("tenant", "Says who calls", |ctx: &Context, _: Value| {
                Ok(json!({ "tenant": ctx.tenant, "attempt": ctx.attempt }))
            })
            .undo("add"),
        )
        .with(Operation::new(
            "fail",
            "Always fails",
            |_: &Context, _: Value| {
                Err::<Value, _>(Error::RateLimited {
                    retry_after_ms: 250,
                })
            },
        ))
}

fn invoke(name: &str, input: &str) -> Result<Value> {
    let ctx = Context {
        tenant: "acme".into(),
        attempt: 2,
        ..Context::default()
    };
    let output = operations().invoke(&ctx, name, input)?;
    Ok(serde_json::from_str(&output).expect("output is JSON"))
}

#[test]
fn dispatches_by_name_with_typed_json() {
    assert_eq!(invoke("add", r#"{"a":2,"b":40}"#), Ok(json!({ "sum": 42 })));
    assert_eq!(
        invoke("tenant", "{}"),
        Ok(json!({ "tenant": "acme", "attempt": 2 }))
    );
}

#[test]
fn unknown_operation_is_invalid_input_listing_known_ones() {
    let Err(Error::InvalidInput(message)) = invoke("subtract", "{}") else {
        panic!("expected invalid input");
    };
    assert!(message.contains("`subtract`"), "{message}");
    assert!(message.contains("add, tenant, fail"), "{message}");
}

#[test]
fn input_not_matching_the_type_is_invalid_input_naming_the_field() {
    let Err(Error::InvalidInput(message)) = invoke("add", r#"{"a":1}"#) else {
        panic!("expected invalid input");
    };
    assert!(message.contains("`add`"), "{message}");
    assert!(message.contains("`b`"), "{message}");
    assert!(matches!(
        invoke("add", "not json"),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn handler_errors_pass_through() {
    assert_eq!(
        invoke("fail", "null"),
        Err(Error::RateLimited {
            retry_after_ms: 250
        })
    );
}

#[test]
#[should_panic(expected = "operation `add` is defined twice")]
fn duplicate_names_are_refused() {
    let _ = Operations::new()
        .with(Operation::new("add", "", add))
        .with(Operation::new("add", "", add));
}

struct Calculator;

impl Connector for Calculator {
    fn operations() -> Operations {
        operations()
    }
}

#[test]
fn info_describes_operations_with_schemas() {
    let info = glue::info::<Calculator>(crate::__private::Package {
        name: "calculator",
        version: "1.2.3",
        description: "Adds numbers",
    });
    assert_eq!(info.name, "calculator");
    assert_eq!(info.version, "1.2.3");
    assert_eq!(info.config_schema, "{}");
    assert!(info.triggers.is_empty());
    let names: Vec<_> = info.operations.iter().map(|op| op.name.as_str()).collect();
    assert_eq!(names, ["add", "tenant", "fail"]);
    let add = &info.operations[0];
    assert!(add.idempotent);
    assert_eq!(add.undo, None);
    let input: Value = serde_json::from_str(&add.input_schema).expect("schema is JSON");
    assert_eq!(input["required"], json!(["a", "b"]));
    let output: Value = serde_json::from_str(&add.output_schema).expect("schema is JSON");
    assert_eq!(output["properties"]["sum"]["type"], "integer");
    assert_eq!(info.operations[1].undo.as_deref(), Some("add"));
}

struct Numbers;

impl Connector for Numbers {
    fn operations() -> Operations {
        Operations::new().with(Operation::read::<Numbers>())
    }

    /// Stream `numbers`: 1 to 5, two a page; the cursor is the next number.
    fn read(_: &Context, stream: &str, cursor: Option<String>) -> Result<Page> {
        if stream != "numbers" {
            return Err(Error::InvalidInput(format!("no stream `{stream}`")));
        }
        let from: u32 = cursor
            .as_deref()
            .unwrap_or("1")
            .parse()
            .map_err(|_| Error::InvalidInput("the cursor is not a number".into()))?;
        let records: Vec<u32> = (from..=5).take(2).collect();
        let next = from + 2;
        Page::from_records(&records, (next <= 5).then(|| next.to_string()), next > 5)
    }
}

#[test]
fn read_operation_pages_through_the_connectors_streams() {
    let ops = Numbers::operations();
    let ctx = Context::default();
    let read = |input: Value| -> Result<Value> {
        let output = ops.invoke(&ctx, "read", &input.to_string())?;
        Ok(serde_json::from_str(&output).expect("output is JSON"))
    };
    assert_eq!(
        read(json!({"stream": "numbers"})),
        Ok(json!({"records": [1, 2], "next_cursor": "3", "done": false}))
    );
    assert_eq!(
        read(json!({"stream": "numbers", "cursor": "5"})),
        Ok(json!({"records": [5], "next_cursor": null, "done": true}))
    );
    assert!(matches!(
        read(json!({"stream": "letters"})),
        Err(Error::InvalidInput(m)) if m.contains("letters")
    ));
    assert!(matches!(read(json!({})), Err(Error::InvalidInput(m)) if m.contains("`stream`")));
    assert!(ops.get("read").expect("defined").idempotent);
    let broken = Page {
        records: vec!["{".into()],
        ..Page::default()
    };
    assert!(matches!(
        PageOutput::try_from(broken),
        Err(Error::Internal(_))
    ));
}

struct Renamed;

impl Connector for Renamed {
    fn operations() -> Operations {
        operations()
    }
}

crate::export_connector!(Calculator);
crate::export_connector!(Renamed, name = "calc");

#[test]
fn export_names_the_plugin_after_the_crate_unless_given_a_name() {
    use crate::__private::Exported;
    assert_eq!(Calculator::PACKAGE.name, env!("CARGO_PKG_NAME"));
    assert_eq!(Renamed::PACKAGE.name, "calc");
    for package in [Calculator::PACKAGE, Renamed::PACKAGE] {
        assert_eq!(package.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(package.description, env!("CARGO_PKG_DESCRIPTION"));
    }
    let info = glue::info::<Renamed>(Renamed::PACKAGE);
    assert_eq!(info.name, "calc");
    assert_eq!(info.operations.len(), 3);
}

#[test]
fn defaults_refuse_read_and_webhooks_and_check_succeeds() {
    let ctx = Context::default();
    assert_eq!(Calculator::check(&ctx), Ok(()));
    assert!(matches!(
        Calculator::read(&ctx, "deals", None),
        Err(Error::InvalidInput(m)) if m.contains("not supported")
    ));
    assert!(matches!(
        Calculator::handle_webhook(&ctx, WebhookRequest::default()),
        Err(Error::InvalidInput(m)) if m.contains("not supported")
    ));
}

#[test]
fn errors_map_to_the_wit_variant_case_by_case() {
    use glue::WitError;
    let cases = [
        (
            Error::InvalidInput("i".into()),
            WitError::InvalidInput("i".into()),
        ),
        (
            Error::Unauthorized("u".into()),
            WitError::Unauthorized("u".into()),
        ),
        (Error::NotFound("n".into()), WitError::NotFound("n".into())),
        (Error::Conflict("c".into()), WitError::Conflict("c".into())),
        (
            Error::RateLimited { retry_after_ms: 9 },
            WitError::RateLimited(9),
        ),
        (
            Error::Unavailable("a".into()),
            WitError::Unavailable("a".into()),
        ),
        (Error::Internal("x".into()), WitError::Internal("x".into())),
    ];
    for (ours, theirs) in cases {
        assert_eq!(format!("{:?}", glue::error(ours)), format!("{theirs:?}"));
    }
}

#[test]
fn context_serializes_every_field() {
    let ctx = Context {
        tenant: "t".into(),
        connection: "c".into(),
        run_id: Some("r".into()),
        idempotency_key: None,
        attempt: 1,
        trace_id: None,
        deadline_ms: 5000,
    };
    assert_eq!(
        serde_json::to_value(&ctx).expect("serializes"),
        json!({
            "tenant": "t", "connection": "c", "run_id": "r", "idempotency_key": null,
            "attempt": 1, "trace_id": null, "deadline_ms": 5000
        })
    );
}

#[test]
fn webhook_header_lookup_ignores_case() {
    let request = WebhookRequest {
        headers: vec![("x-hubspot-signature-v3".into(), "sig".into())],
        body: br#"[{"objectId":1}]"#.to_vec(),
        ..WebhookRequest::default()
    };
    assert_eq!(request.header("X-HubSpot-Signature-V3"), Some("sig"));
    assert_eq!(request.header("missing"), None);
    let body: Value = request.json().expect("json body");
    assert_eq!(body[0]["objectId"], 1);
}
