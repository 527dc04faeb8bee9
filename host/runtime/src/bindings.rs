//! The one `bindgen!` site of the host: Rust types and traits for the
//! `junction:plugin` worlds.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "connector",
    imports: { default: async | trappable },
    exports: { default: async },
    additional_derives: [serde::Serialize],
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi": wasmtime_wasi::p2::bindings,
    },
});

/// The `transform` world; its interfaces are the ones generated above.
pub mod transform {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "transform",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "junction:plugin": super::junction::plugin,
        },
    });
}
