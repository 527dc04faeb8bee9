//! A valid component of a world Junction does not know, built without the SDK:
//! the registry must refuse it as targeting an unsupported world.

#[allow(unsafe_code, missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        inline: "
            package example:other;

            world other {
                export hello: func() -> string;
            }
        ",
    });
}

struct Other;

impl bindings::Guest for Other {
    fn hello() -> String {
        "hello from another world".into()
    }
}

bindings::export!(Other with_types_in bindings);
