//! Write Junction connector and transform plugins in Rust.
//!
//! A plugin is a `cdylib` crate built for `wasm32-wasip2` that depends on this
//! crate with exactly one of its features:
//!
//! - `connector`: the plugin talks to one external system. Implement
//!   [`Connector`] and call [`export_connector!`]. See the example on
//!   [`Connector`].
//! - `transform`: the plugin maps JSON to JSON, without network or storage.
//!   Implement [`Transform`] and call [`export_transform!`]. See the example on
//!   [`Transform`].
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! junction-sdk = { version = "0.1", features = ["connector"] }
//! serde = { version = "1", features = ["derive"] }
//! schemars = "1"
//! ```
//!
//! The plugin's name in the host is the crate's name; a crate whose name is
//! not the plugin's passes one to the export macro, e.g.
//! `export_connector!(Jira, name = "jira")` in a crate named
//! `acme-jira-connector`. The version is always the crate's.
//!
//! Inputs and outputs are typed with serde; their JSON Schemas, which the host
//! shows to operators, are derived with [`schemars`]. A plugin that would
//! rather not depend on `schemars` itself derives [`JsonSchema`] through this
//! crate with `#[schemars(crate = "junction_sdk::schemars")]` on the type.
//! Errors are an [`Error`] whose case tells the host what to do next (retry,
//! back off, give up). Shapes shared between systems live in [`canonical`].
//!
//! A connector's operations can be tested natively with
//! [`Operations::invoke`], a transform with [`apply_json`].
//!
//! Secrets never reach a plugin: the host adds credentials to outbound
//! requests itself, so a connector only sends plain [`http`] requests.
//!
//! Outside a Junction host (native unit tests of a plugin's pure functions),
//! [`log`] writes to stderr, [`config`] finds nothing and key-value and HTTP
//! calls fail with [`Error::Unavailable`].
#![deny(missing_docs)]
// Items behind the other feature are linked from the crate docs above.
#![cfg_attr(
    not(all(feature = "connector", feature = "transform")),
    allow(rustdoc::broken_intra_doc_links)
)]

#[cfg(all(feature = "connector", feature = "transform", target_arch = "wasm32"))]
compile_error!(
    "junction-sdk: enable exactly one of the features `connector` and `transform`: \
     a plugin component exports one world"
);

pub mod canonical;
#[cfg(any(feature = "connector", feature = "transform"))]
pub mod config;
mod error;
pub mod log;
pub mod time;

#[cfg(feature = "connector")]
mod connector;
#[cfg(feature = "connector")]
pub mod http;
#[cfg(feature = "connector")]
pub mod rest;
#[cfg(feature = "transform")]
mod transform;

#[cfg(any(feature = "connector", feature = "transform"))]
#[doc(hidden)]
pub mod wit;

#[cfg(feature = "connector")]
pub use connector::{
    Connector, Context, Event, Operation, Operations, Page, PageOutput, ReadInput, Trigger,
    WebhookRequest,
};
pub use error::{Error, Result};
#[cfg(feature = "transform")]
pub use transform::{Transform, apply_json};

/// Re-exported so that plugins and the SDK agree on one version.
pub use schemars;
/// Re-exported so that plugins and the SDK agree on one version.
pub use serde_json;

/// Derives the JSON Schema of an operation's input or output.
pub use schemars::JsonSchema;

/// The JSON Schema of `T`, as JSON text.
pub fn schema_of<T: JsonSchema>() -> String {
    schemars::schema_for!(T).as_value().to_string()
}

/// What the export macros need at run time. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "connector")]
    pub use crate::connector::glue as connector;
    #[cfg(feature = "transform")]
    pub use crate::transform::glue as transform;

    /// Name, version and description of the plugin crate, taken from its
    /// Cargo manifest where the export macro expands.
    #[derive(Debug, Clone, Copy)]
    pub struct Package {
        /// `CARGO_PKG_NAME`, or the name given to the export macro.
        pub name: &'static str,
        /// `CARGO_PKG_VERSION`.
        pub version: &'static str,
        /// `CARGO_PKG_DESCRIPTION`.
        pub description: &'static str,
    }

    /// Implemented by the export macros for the exported type, so that a
    /// type is exported at most once and native tests can read what `info`
    /// will say.
    pub trait Exported {
        /// What the plugin's `info` reports as its name, version and description.
        const PACKAGE: Package;
    }

    /// Whether `name` is a plugin name the host accepts: 1 to 64 of `a-z`,
    /// `0-9`, `-` and `_`. A `const fn` so the export macros check it while
    /// compiling the plugin.
    pub const fn valid_name(name: &str) -> bool {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() > 64 {
            return false;
        }
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
                return false;
            }
            i += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Input {
        key: String,
        count: Option<u32>,
    }

    #[test]
    fn plugin_names_are_lowercase_digits_dash_underscore_up_to_64() {
        use __private::valid_name;
        for good in ["jira", "echo-v2", "a", "x_1", &"a".repeat(64)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "Jira",
            "acme.jira",
            "jira connector",
            "é",
            &"a".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn schema_of_names_properties_and_required_fields() {
        let schema: serde_json::Value =
            serde_json::from_str(&schema_of::<Input>()).expect("schema is JSON");
        assert_eq!(schema["type"], "object");
        assert!(schema["properties"]["key"].is_object());
        assert!(schema["properties"]["count"].is_object());
        assert_eq!(schema["required"], serde_json::json!(["key"]));
    }
}
