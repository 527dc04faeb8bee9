//! The `connector` world: the [`Connector`] trait, its typed operations and
//! the per-call [`Context`].

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

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

mod operation;

pub use operation::{Operation, Operations, PageOutput, ReadInput};

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
pub mod glue;

/// Exports a [`Connector`] implementation as the plugin's `connector` world.
///
/// Call it once, at the root of the plugin crate. The plugin's version and
/// description in `info` are the crate's `CARGO_PKG_VERSION` (or, when
/// set while it builds, `JUNCTION_PLUGIN_VERSION`, which `junction dev`
/// sets) and
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
                // `junction dev` builds each swap as a version of its own.
                version: match ::core::option_env!("JUNCTION_PLUGIN_VERSION") {
                    ::core::option::Option::Some(version) => version,
                    ::core::option::Option::None => ::core::env!("CARGO_PKG_VERSION"),
                },
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
mod tests;
