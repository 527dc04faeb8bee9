//! The `connector` world: the [`Connector`] trait, its typed operations and
//! the per-call [`Context`].

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result, schema_of};

/// A plugin that talks to one external system.
///
/// Only [`Connector::operations`] is required; everything else has a default.
/// Export the implementation with [`export_connector!`](crate::export_connector).
///
/// A connector with two operations:
///
/// ```
/// use junction_sdk::{Connector, Context, JsonSchema, Operation, Operations, Result, http};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize, JsonSchema)]
/// struct Lookup { id: String }
///
/// #[derive(Serialize, Deserialize, JsonSchema)]
/// struct Ticket { id: String, title: String }
///
/// fn base(ctx: &Context) -> Result<String> { ctx.require_config("base_url") }
///
/// fn get_ticket(ctx: &Context, input: Lookup) -> Result<Ticket> {
///     http::Request::get(format!("{}/tickets/{}", base(ctx)?, input.id)).send()?.ok()?.json()
/// }
///
/// fn create_ticket(ctx: &Context, input: Ticket) -> Result<Ticket> {
///     let request = http::Request::post(format!("{}/tickets", base(ctx)?)).json(&input)?;
///     request.send()?.ok()?.json()
/// }
///
/// struct Tickets;
///
/// impl Connector for Tickets {
///     fn operations() -> Operations {
///         Operations::new()
///             .with(Operation::new("get-ticket", "Reads a ticket", get_ticket))
///             .with(Operation::new("create-ticket", "Creates a ticket", create_ticket).idempotent())
///     }
/// }
///
/// junction_sdk::export_connector!(Tickets);
/// # fn main() {}
/// ```
pub trait Connector {
    /// The operations this connector offers, by name.
    fn operations() -> Operations;

    /// Checks that the system is reachable with the connection's credentials.
    /// The default succeeds without I/O.
    fn check(ctx: &Context) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Reads the next page of `stream` after `cursor` (`None`: from the start).
    /// The default refuses every stream with [`Error::InvalidInput`].
    fn read(ctx: &Context, stream: &str, cursor: Option<String>) -> Result<Page> {
        let _ = (ctx, cursor);
        Err(Error::InvalidInput(format!(
            "read is not supported by this connector (stream `{stream}`)"
        )))
    }

    /// Parses a webhook whose signature the host has already verified into
    /// events; an empty list means "nothing of interest". The default refuses
    /// every webhook with [`Error::InvalidInput`].
    fn handle_webhook(ctx: &Context, request: WebhookRequest) -> Result<Vec<Event>> {
        let _ = (ctx, request);
        Err(Error::InvalidInput(
            "webhooks are not supported by this connector".into(),
        ))
    }

    /// Events this connector can emit. Empty by default.
    fn triggers() -> Vec<Trigger> {
        Vec::new()
    }

    /// JSON Schema of the connection's non-secret settings; `{}` by default.
    /// [`schema_of`](crate::schema_of) derives one from a type.
    fn config_schema() -> String {
        "{}".into()
    }
}

/// Who is calling and under which guarantees; passed to every call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Context {
    /// Tenant that owns the connection.
    pub tenant: String,
    /// Name of the connection this call runs on.
    pub connection: String,
    /// Flow run this call belongs to; `None` for a direct invoke.
    pub run_id: Option<String>,
    /// Stable across retries of the same logical call: pass it to the remote
    /// system so a side effect happens once. `None` when the caller gave none.
    pub idempotency_key: Option<String>,
    /// 1 for the first attempt, 2 for the first retry, and so on.
    pub attempt: u32,
    /// W3C trace id of the surrounding trace; `None` when untraced.
    pub trace_id: Option<String>,
    /// Milliseconds left before the host interrupts this call.
    pub deadline_ms: u64,
}

impl Context {
    /// The connection setting `key`, or `None` when it has none.
    pub fn config(&self, key: &str) -> Option<String> {
        crate::config::get(key)
    }

    /// The connection setting `key`; [`Error::InvalidInput`] naming the key
    /// when the connection has none.
    pub fn require_config(&self, key: &str) -> Result<String> {
        self.config(key).ok_or_else(|| {
            Error::InvalidInput(format!(
                "connection `{}` has no setting `{key}`",
                self.connection
            ))
        })
    }

    /// The stored value of `key`, or `None` when the key does not exist.
    pub fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        kv(|| crate::wit::connector::junction::plugin::kv::get(key))
    }

    /// Creates or replaces the value of `key`.
    pub fn kv_set(&self, key: &str, value: &[u8]) -> Result<()> {
        kv(|| crate::wit::connector::junction::plugin::kv::set(key, value))
    }

    /// Deletes `key`; deleting a missing key is not an error.
    pub fn kv_delete(&self, key: &str) -> Result<()> {
        kv(|| crate::wit::connector::junction::plugin::kv::delete(key))
    }

    /// Keys that start with `prefix`, sorted.
    pub fn kv_list(&self, prefix: &str) -> Result<Vec<String>> {
        kv(|| crate::wit::connector::junction::plugin::kv::list_keys(prefix))
    }

    /// The stored value of `key` parsed as JSON; a value that is not the
    /// expected JSON is [`Error::Internal`] (the plugin wrote it).
    pub fn kv_get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.kv_get(key)?
            .map(|bytes| {
                serde_json::from_slice(&bytes).map_err(|e| {
                    Error::Internal(format!(
                        "stored value of `{key}` is not the expected JSON: {e}"
                    ))
                })
            })
            .transpose()
    }

    /// Stores `value` as JSON under `key`.
    pub fn kv_set_json<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| Error::Internal(format!("serializing the value of `{key}`: {e}")))?;
        self.kv_set(key, &bytes)
    }
}

fn kv<T>(
    call: impl FnOnce() -> std::result::Result<T, crate::wit::connector::junction::plugin::kv::Error>,
) -> Result<T> {
    use crate::wit::connector::junction::plugin::kv::Error as KvError;
    if !cfg!(target_arch = "wasm32") {
        return Err(Error::Unavailable(
            "key-value storage is only available inside a Junction host".into(),
        ));
    }
    call().map_err(|error| match error {
        KvError::TooLarge(message) => Error::Internal(format!("key-value: too large: {message}")),
        KvError::Unavailable(message) => Error::Unavailable(format!("key-value: {message}")),
    })
}

type Handler = Box<dyn Fn(&Context, &str) -> Result<String>>;

/// One typed operation of a connector: a name, a description and a function
/// from a serde input to a serde output.
pub struct Operation {
    name: String,
    description: String,
    // Derived only when `info` asks: invoke builds the operation table on
    // every call, and deriving a schema costs far more than a no-op call.
    input_schema: Schema,
    output_schema: Schema,
    idempotent: bool,
    undo: Option<String>,
    handler: Handler,
}

/// A JSON Schema: derived from a type when first needed, or given as text.
enum Schema {
    Derived(fn() -> String),
    Given(String),
}

impl Schema {
    fn text(&self) -> String {
        match self {
            Schema::Derived(derive) => derive(),
            Schema::Given(text) => text.clone(),
        }
    }
}

impl Operation {
    /// An operation called `name` (kebab-case, e.g. `create-issue`) that runs
    /// `handler`. The input JSON is parsed into `I` (a mismatch is
    /// [`Error::InvalidInput`] naming the field); the output is serialized
    /// from `O`. Both JSON Schemas are derived from the types.
    pub fn new<I, O, F>(name: &str, description: &str, handler: F) -> Self
    where
        I: DeserializeOwned + JsonSchema,
        O: Serialize + JsonSchema,
        F: Fn(&Context, I) -> Result<O> + 'static,
    {
        let op = name.to_owned();
        Operation {
            name: name.into(),
            description: description.into(),
            input_schema: Schema::Derived(schema_of::<I>),
            output_schema: Schema::Derived(schema_of::<O>),
            idempotent: false,
            undo: None,
            handler: Box::new(move |ctx, input| {
                let input: I = serde_json::from_str(input).map_err(|e| {
                    Error::InvalidInput(format!("input of `{op}` does not match its schema: {e}"))
                })?;
                let output = handler(ctx, input)?;
                serde_json::to_string(&output)
                    .map_err(|e| Error::Internal(format!("serializing the output of `{op}`: {e}")))
            }),
        }
    }

    /// Declares that calling it twice with the same idempotency key has the
    /// effect of one call, so the host may retry it freely.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Names the operation that undoes this one (a saga compensation).
    pub fn undo(mut self, operation: &str) -> Self {
        self.undo = Some(operation.into());
        self
    }

    /// Replaces the derived input JSON Schema.
    pub fn input_schema(mut self, schema: impl Into<String>) -> Self {
        self.input_schema = Schema::Given(schema.into());
        self
    }

    /// Replaces the derived output JSON Schema.
    pub fn output_schema(mut self, schema: impl Into<String>) -> Self {
        self.output_schema = Schema::Given(schema.into());
        self
    }

    /// The operation's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An operation called `read` that runs the connector's
    /// [`Connector::read`]: input `{"stream", "cursor"?}`, output
    /// `{"records": [...], "next_cursor", "done"}`. Flows call operations, so
    /// this is how a flow step pages through a stream; it is idempotent, as a
    /// read is.
    pub fn read<C: Connector>() -> Self {
        Operation::new(
            "read",
            "Reads the next page of a stream after a cursor (from the start without one)",
            |ctx: &Context, input: ReadInput| {
                PageOutput::try_from(C::read(ctx, &input.stream, input.cursor)?)
            },
        )
        .idempotent()
    }
}

/// Input of the operation [`Operation::read`] makes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, JsonSchema)]
pub struct ReadInput {
    /// The stream's name, one of those the connector documents.
    pub stream: String,
    /// The `next_cursor` of the previous page; absent to read from the start.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A [`Page`] as the output of the operation [`Operation::read`] makes.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct PageOutput {
    /// The page's records.
    pub records: Vec<serde_json::Value>,
    /// The cursor to read the next page with; `None` when the stream has no
    /// position to resume from.
    pub next_cursor: Option<String>,
    /// True when the stream has no more records for now.
    pub done: bool,
}

impl TryFrom<Page> for PageOutput {
    type Error = Error;

    /// Fails with [`Error::Internal`] when a record is not JSON.
    fn try_from(page: Page) -> Result<Self> {
        let records = page
            .records
            .iter()
            .map(|r| serde_json::from_str(r))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Internal(format!("a record of the page is not JSON: {e}")))?;
        Ok(PageOutput {
            records,
            next_cursor: page.next_cursor,
            done: page.done,
        })
    }
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation")
            .field("name", &self.name)
            .field("idempotent", &self.idempotent)
            .field("undo", &self.undo)
            .finish_non_exhaustive()
    }
}

/// The operations of a connector, looked up by name.
#[derive(Debug, Default)]
pub struct Operations {
    operations: Vec<Operation>,
}

impl Operations {
    /// No operations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `operation`.
    ///
    /// # Panics
    ///
    /// When an operation of that name was already added: the host would not
    /// know which one to call, so the plugin fails as soon as it is described.
    pub fn with(mut self, operation: Operation) -> Self {
        assert!(
            self.get(&operation.name).is_none(),
            "operation `{}` is defined twice",
            operation.name
        );
        self.operations.push(operation);
        self
    }

    /// The operation called `name`.
    pub fn get(&self, name: &str) -> Option<&Operation> {
        self.operations.iter().find(|op| op.name == name)
    }

    /// Names of the operations, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.operations.iter().map(|op| op.name.as_str())
    }

    /// Runs the operation `name` on JSON `input` and returns its JSON output.
    /// An unknown name is [`Error::InvalidInput`] listing the known ones.
    pub fn invoke(&self, ctx: &Context, name: &str, input: &str) -> Result<String> {
        let operation = self.get(name).ok_or_else(|| {
            let known: Vec<_> = self.names().collect();
            Error::InvalidInput(format!(
                "unknown operation `{name}`; this connector offers: {}",
                known.join(", ")
            ))
        })?;
        (operation.handler)(ctx, input)
    }
}

/// One kind of event a connector can emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// CloudEvents `type`, e.g. `com.hubspot.deal.closed-won`.
    pub event_type: String,
    /// One sentence for operators.
    pub description: String,
    /// JSON Schema of the event's `data`.
    pub schema: String,
}

/// One page of an incremental read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Records as JSON text, one object each.
    pub records: Vec<String>,
    /// Cursor for the next read; `None` when the stream has no position to resume from.
    pub next_cursor: Option<String>,
    /// True when the stream has no more records for now.
    pub done: bool,
}

impl Page {
    /// A page of `records` serialized to JSON.
    pub fn from_records<T: Serialize>(
        records: &[T],
        next_cursor: Option<String>,
        done: bool,
    ) -> Result<Self> {
        let records = records
            .iter()
            .map(serde_json::to_string)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Internal(format!("serializing a record: {e}")))?;
        Ok(Page {
            records,
            next_cursor,
            done,
        })
    }
}

/// An event in the shape of a CloudEvent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Unique per `source`; the host de-duplicates on (source, id).
    pub id: String,
    /// CloudEvents `type`.
    pub event_type: String,
    /// The system and tenant the event came from.
    pub source: String,
    /// The object the event is about, if any.
    pub subject: Option<String>,
    /// RFC 3339 time at which the event happened.
    pub time: String,
    /// The payload as JSON text.
    pub data: String,
}

/// An inbound webhook whose signature the host has already verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookRequest {
    /// HTTP method, upper case.
    pub method: String,
    /// Path and query as received.
    pub path: String,
    /// Headers as received, names lower case.
    pub headers: Vec<(String, String)>,
    /// Raw body bytes.
    pub body: Vec<u8>,
}

impl WebhookRequest {
    /// The first header called `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON; a mismatch is [`Error::InvalidInput`].
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

/// Conversions between the typed API and the raw bindings, called by the
/// code that [`export_connector!`](crate::export_connector) generates.
#[doc(hidden)]
pub mod glue {
    use super::{Connector, Context, Event, Page, WebhookRequest};
    use crate::__private::Package;
    use crate::Error;
    use crate::wit::connector::junction::plugin::types as w;

    pub use w::{
        CallContext, Error as WitError, Event as WitEvent, Page as WitPage, PluginInfo,
        WebhookRequest as WitWebhookRequest,
    };

    pub fn info<T: Connector>(package: Package) -> PluginInfo {
        let operations = T::operations()
            .operations
            .into_iter()
            .map(|op| w::OperationInfo {
                name: op.name,
                description: op.description,
                input_schema: op.input_schema.text(),
                output_schema: op.output_schema.text(),
                idempotent: op.idempotent,
                undo: op.undo,
            })
            .collect();
        let triggers = T::triggers()
            .into_iter()
            .map(|t| w::TriggerInfo {
                event_type: t.event_type,
                description: t.description,
                schema: t.schema,
            })
            .collect();
        PluginInfo {
            name: package.name.into(),
            version: package.version.into(),
            description: package.description.into(),
            operations,
            triggers,
            config_schema: T::config_schema(),
        }
    }

    pub fn check<T: Connector>(ctx: CallContext) -> Result<(), WitError> {
        T::check(&context(ctx)).map_err(error)
    }

    pub fn invoke<T: Connector>(
        ctx: CallContext,
        operation: String,
        input: String,
    ) -> Result<String, WitError> {
        T::operations()
            .invoke(&context(ctx), &operation, &input)
            .map_err(error)
    }

    pub fn read<T: Connector>(
        ctx: CallContext,
        stream: String,
        cursor: Option<String>,
    ) -> Result<WitPage, WitError> {
        let page: Page = T::read(&context(ctx), &stream, cursor).map_err(error)?;
        Ok(WitPage {
            records: page.records,
            next_cursor: page.next_cursor,
            done: page.done,
        })
    }

    pub fn handle_webhook<T: Connector>(
        ctx: CallContext,
        request: WitWebhookRequest,
    ) -> Result<Vec<WitEvent>, WitError> {
        let request = WebhookRequest {
            method: request.method,
            path: request.path,
            headers: request.headers,
            body: request.body,
        };
        let events: Vec<Event> = T::handle_webhook(&context(ctx), request).map_err(error)?;
        Ok(events
            .into_iter()
            .map(|e| WitEvent {
                id: e.id,
                event_type: e.event_type,
                source: e.source,
                subject: e.subject,
                time: e.time,
                data: e.data,
            })
            .collect())
    }

    fn context(ctx: CallContext) -> Context {
        Context {
            tenant: ctx.tenant,
            connection: ctx.connection,
            run_id: ctx.run_id,
            idempotency_key: ctx.idempotency_key,
            attempt: ctx.attempt,
            trace_id: ctx.trace_id,
            deadline_ms: ctx.deadline_ms,
        }
    }

    pub(crate) fn error(error: Error) -> WitError {
        match error {
            Error::InvalidInput(m) => WitError::InvalidInput(m),
            Error::Unauthorized(m) => WitError::Unauthorized(m),
            Error::NotFound(m) => WitError::NotFound(m),
            Error::Conflict(m) => WitError::Conflict(m),
            Error::RateLimited { retry_after_ms } => WitError::RateLimited(retry_after_ms),
            Error::Unavailable(m) => WitError::Unavailable(m),
            Error::Internal(m) => WitError::Internal(m),
        }
    }
}

/// Exports a [`Connector`] implementation as the plugin's `connector` world.
///
/// Call it once, at the root of the plugin crate. The plugin's version and
/// description in `info` are the crate's `CARGO_PKG_VERSION` and
/// `CARGO_PKG_DESCRIPTION`. Its name is the crate's `CARGO_PKG_NAME`, unless
/// given with `name = "..."`, so that a crate named, say,
/// `acme-jira-connector` can publish as plugin `jira`:
///
/// ```
/// # use junction_sdk::{Connector, Operations};
/// # struct Jira;
/// # impl Connector for Jira { fn operations() -> Operations { Operations::new() } }
/// junction_sdk::export_connector!(Jira, name = "jira");
/// # fn main() {}
/// ```
///
/// A plugin name is 1 to 64 of `a-z`, `0-9`, `-` and `_`; any other name,
/// given or taken from the crate, is a compile error.
#[macro_export]
macro_rules! export_connector {
    ($connector:ty $(,)?) => {
        $crate::export_connector!($connector, name = ::core::env!("CARGO_PKG_NAME"));
    };
    ($connector:ty, name = $name:expr $(,)?) => {
        const _: () = {
            #[allow(dead_code)]
            struct __JunctionConnector;

            const PACKAGE: $crate::__private::Package = $crate::__private::Package {
                name: $name,
                version: ::core::env!("CARGO_PKG_VERSION"),
                description: ::core::env!("CARGO_PKG_DESCRIPTION"),
            };
            const _: () = ::core::assert!(
                $crate::__private::valid_name(PACKAGE.name),
                "junction-sdk: a plugin name is 1 to 64 of a-z, 0-9, `-` and `_`; \
                 choose one with `export_connector!(Type, name = \"...\")`"
            );

            impl $crate::__private::Exported for $connector {
                const PACKAGE: $crate::__private::Package = PACKAGE;
            }

            impl $crate::wit::connector::Guest for __JunctionConnector {
                fn info() -> $crate::__private::connector::PluginInfo {
                    $crate::__private::connector::info::<$connector>(PACKAGE)
                }
                fn check(
                    ctx: $crate::__private::connector::CallContext,
                ) -> ::core::result::Result<(), $crate::__private::connector::WitError> {
                    $crate::__private::connector::check::<$connector>(ctx)
                }
                fn invoke(
                    ctx: $crate::__private::connector::CallContext,
                    operation: ::std::string::String,
                    input: ::std::string::String,
                ) -> ::core::result::Result<
                    ::std::string::String,
                    $crate::__private::connector::WitError,
                > {
                    $crate::__private::connector::invoke::<$connector>(ctx, operation, input)
                }
                fn read(
                    ctx: $crate::__private::connector::CallContext,
                    stream: ::std::string::String,
                    cursor: ::core::option::Option<::std::string::String>,
                ) -> ::core::result::Result<
                    $crate::__private::connector::WitPage,
                    $crate::__private::connector::WitError,
                > {
                    $crate::__private::connector::read::<$connector>(ctx, stream, cursor)
                }
                fn handle_webhook(
                    ctx: $crate::__private::connector::CallContext,
                    request: $crate::__private::connector::WitWebhookRequest,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<$crate::__private::connector::WitEvent>,
                    $crate::__private::connector::WitError,
                > {
                    $crate::__private::connector::handle_webhook::<$connector>(ctx, request)
                }
            }

            // Natively nothing calls the exports, so without this a native
            // `cargo build` of the plugin calls all of its code dead.
            #[cfg(not(target_arch = "wasm32"))]
            const _: () = {
                let _ = <__JunctionConnector as $crate::wit::connector::Guest>::info;
                let _ = <__JunctionConnector as $crate::wit::connector::Guest>::check;
                let _ = <__JunctionConnector as $crate::wit::connector::Guest>::invoke;
                let _ = <__JunctionConnector as $crate::wit::connector::Guest>::read;
                let _ = <__JunctionConnector as $crate::wit::connector::Guest>::handle_webhook;
            };

            // Only a component has exports; natively (the plugin's unit
            // tests) the symbols would clash with libc's, e.g. `read`.
            #[cfg(target_arch = "wasm32")]
            $crate::wit::connector::export_connector_world!(
                __JunctionConnector with_types_in $crate::wit::connector
            );
        };
    };
}

#[cfg(test)]
mod tests {
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
}
