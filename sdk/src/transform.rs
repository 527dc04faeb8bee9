//! The `transform` world: the [`Transform`] trait.

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Result;

/// A pure data transformation: one JSON input to zero or more JSON outputs,
/// without network or storage. Export it with
/// [`export_transform!`](crate::export_transform).
///
/// ```
/// use junction_sdk::{JsonSchema, Result, Transform};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize, JsonSchema)]
/// struct Contact { first: String, last: String }
///
/// #[derive(Serialize, JsonSchema)]
/// struct Person { name: String }
///
/// struct FullName;
///
/// impl Transform for FullName {
///     type Input = Contact;
///     type Output = Person;
///     fn apply(c: Contact) -> Result<Vec<Person>> {
///         Ok(vec![Person { name: format!("{} {}", c.first, c.last) }])
///     }
/// }
///
/// junction_sdk::export_transform!(FullName);
/// # fn main() {}
/// ```
pub trait Transform {
    /// What the transform reads; JSON that does not fit is
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) naming the field.
    type Input: DeserializeOwned + JsonSchema;
    /// What the transform writes.
    type Output: Serialize + JsonSchema;

    /// Maps one input to zero or more outputs; an empty list means "nothing
    /// to pass on".
    fn apply(input: Self::Input) -> Result<Vec<Self::Output>>;
}

/// Runs `T` on JSON text as the host does: parses the input (a mismatch is
/// [`Error::InvalidInput`](crate::Error::InvalidInput) naming the field), applies
/// the transform and serializes each output. Use it to test a transform natively.
pub fn apply_json<T: Transform>(input: &str) -> Result<Vec<String>> {
    let input: T::Input = serde_json::from_str(input)?;
    T::apply(input)?
        .iter()
        .map(|output| {
            serde_json::to_string(output)
                .map_err(|e| crate::Error::Internal(format!("serializing an output: {e}")))
        })
        .collect()
}

/// Conversions between the typed API and the raw bindings, called by the
/// code that [`export_transform!`](crate::export_transform) generates.
#[doc(hidden)]
pub mod glue {
    use super::Transform;
    use crate::__private::Package;
    use crate::wit::transform::junction::plugin::types as w;
    use crate::{Error, Result};
    pub use w::{Error as WitError, PluginInfo};

    use super::apply_json;

    pub fn info<T: Transform>(package: Package) -> PluginInfo {
        PluginInfo {
            name: package.name.into(),
            version: package.version.into(),
            description: package.description.into(),
            operations: Vec::new(),
            triggers: Vec::new(),
            config_schema: "{}".into(),
        }
    }

    pub fn apply<T: Transform>(input: String) -> Result<Vec<String>, WitError> {
        apply_json::<T>(&input).map_err(|error| match error {
            Error::InvalidInput(m) => WitError::InvalidInput(m),
            Error::Unauthorized(m) => WitError::Unauthorized(m),
            Error::NotFound(m) => WitError::NotFound(m),
            Error::Conflict(m) => WitError::Conflict(m),
            Error::RateLimited { retry_after_ms } => WitError::RateLimited(retry_after_ms),
            Error::Unavailable(m) => WitError::Unavailable(m),
            Error::Internal(m) => WitError::Internal(m),
        })
    }
}

/// Exports a [`Transform`] implementation as the plugin's `transform` world.
///
/// Call it once, at the root of the plugin crate. The plugin's version and
/// description in `info` are the crate's `CARGO_PKG_VERSION` (or, when
/// set while it builds, `JUNCTION_PLUGIN_VERSION`, which `junction dev`
/// sets) and
/// `CARGO_PKG_DESCRIPTION`. Its name is the crate's `CARGO_PKG_NAME`, unless
/// given with `name = "..."`, so that a crate named, say,
/// `acme-deal-to-project` can publish as plugin `deal-to-project`:
///
/// ```
/// # use junction_sdk::{Result, Transform};
/// # struct DealToProject;
/// # impl Transform for DealToProject {
/// #     type Input = junction_sdk::serde_json::Value;
/// #     type Output = junction_sdk::serde_json::Value;
/// #     fn apply(input: Self::Input) -> Result<Vec<Self::Output>> { Ok(vec![input]) }
/// # }
/// junction_sdk::export_transform!(DealToProject, name = "deal-to-project");
/// # fn main() {}
/// ```
///
/// A plugin name is 1 to 64 of `a-z`, `0-9`, `-` and `_`; any other name,
/// given or taken from the crate, is a compile error.
#[macro_export]
macro_rules! export_transform {
    ($transform:ty $(,)?) => {
        $crate::export_transform!($transform, name = ::core::env!("CARGO_PKG_NAME"));
    };
    ($transform:ty, name = $name:expr $(,)?) => {
        const _: () = {
            #[allow(dead_code)]
            struct __JunctionTransform;

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
                 choose one with `export_transform!(Type, name = \"...\")`"
            );

            impl $crate::__private::Exported for $transform {
                const PACKAGE: $crate::__private::Package = PACKAGE;
            }

            impl $crate::wit::transform::Guest for __JunctionTransform {
                fn info() -> $crate::__private::transform::PluginInfo {
                    $crate::__private::transform::info::<$transform>(PACKAGE)
                }
                fn apply(
                    input: ::std::string::String,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<::std::string::String>,
                    $crate::__private::transform::WitError,
                > {
                    $crate::__private::transform::apply::<$transform>(input)
                }
            }

            // Natively nothing calls the exports, so without this a native
            // `cargo build` of the plugin calls all of its code dead.
            #[cfg(not(target_arch = "wasm32"))]
            const _: () = {
                let _ = <__JunctionTransform as $crate::wit::transform::Guest>::info;
                let _ = <__JunctionTransform as $crate::wit::transform::Guest>::apply;
            };

            // Only a component has exports; natively (the plugin's unit
            // tests) the symbols could clash with the C library's.
            #[cfg(target_arch = "wasm32")]
            $crate::wit::transform::export_transform_world!(
                __JunctionTransform with_types_in $crate::wit::transform
            );
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use serde::Deserialize;

    #[derive(Deserialize, JsonSchema)]
    struct Words {
        text: String,
    }

    #[derive(Serialize, JsonSchema)]
    struct Word {
        word: String,
    }

    struct Split;

    impl Transform for Split {
        type Input = Words;
        type Output = Word;
        fn apply(input: Words) -> Result<Vec<Word>> {
            Ok(input
                .text
                .split_whitespace()
                .map(|w| Word { word: w.into() })
                .collect())
        }
    }

    struct Renamed;

    impl Transform for Renamed {
        type Input = Words;
        type Output = Word;
        fn apply(input: Words) -> Result<Vec<Word>> {
            Split::apply(input)
        }
    }

    crate::export_transform!(Split);
    crate::export_transform!(Renamed, name = "split_words",);

    #[test]
    fn export_names_the_plugin_after_the_crate_unless_given_a_name() {
        use crate::__private::Exported;
        assert_eq!(Split::PACKAGE.name, env!("CARGO_PKG_NAME"));
        assert_eq!(Renamed::PACKAGE.name, "split_words");
        assert_eq!(Renamed::PACKAGE.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(glue::info::<Renamed>(Renamed::PACKAGE).name, "split_words");
    }

    #[test]
    fn apply_maps_json_to_zero_or_more_outputs() {
        assert_eq!(
            apply_json::<Split>(r#"{"text":"a b"}"#),
            Ok(vec![
                r#"{"word":"a"}"#.to_string(),
                r#"{"word":"b"}"#.to_string()
            ])
        );
        assert_eq!(apply_json::<Split>(r#"{"text":""}"#), Ok(vec![]));
    }

    #[test]
    fn wrong_input_is_invalid_input_naming_the_field() {
        let Err(Error::InvalidInput(message)) = apply_json::<Split>("{}") else {
            panic!("expected invalid input");
        };
        assert!(message.contains("`text`"), "{message}");
    }
}
