//! Raw bindings generated from `wit/plugin.wit`. Plugins use the typed API of
//! the crate root instead; these are public only because the export macros
//! expand in the plugin's crate.
//!
//! Each world has its own module because one component exports one world: two
//! worlds' exports linked into one `cdylib` do not make a valid component.

/// Bindings of the `connector` world, including `wasi:http`.
#[cfg(feature = "connector")]
#[allow(unsafe_code, missing_docs, clippy::all, unused, unsafe_op_in_unsafe_fn)]
pub mod connector {
    wit_bindgen::generate!({
        world: "connector",
        path: "../wit",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "export_connector_world",
        default_bindings_module: "junction_sdk::wit::connector",
    });
}

/// Bindings of the `transform` world.
#[cfg(feature = "transform")]
#[allow(unsafe_code, missing_docs, clippy::all, unused, unsafe_op_in_unsafe_fn)]
pub mod transform {
    wit_bindgen::generate!({
        world: "transform",
        path: "../wit",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "export_transform_world",
        default_bindings_module: "junction_sdk::wit::transform",
    });
}

/// The `log` and `config` imports of whichever world is enabled; both worlds
/// import the same interfaces.
#[cfg(feature = "connector")]
pub(crate) use connector::junction::plugin::config;
#[cfg(all(feature = "connector", target_arch = "wasm32"))]
pub(crate) use connector::junction::plugin::log;
#[cfg(all(feature = "transform", not(feature = "connector")))]
pub(crate) use transform::junction::plugin::config;
#[cfg(all(
    feature = "transform",
    not(feature = "connector"),
    target_arch = "wasm32"
))]
pub(crate) use transform::junction::plugin::log;
