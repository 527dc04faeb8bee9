//! Hello world as a `wasi:http/proxy` component: answers every request with
//! 200 and a short body. What `wasmtime serve` runs in the HTTP benchmark.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "wasi:http/proxy@0.2.12",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Hello;

impl Guest for Hello {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let response = OutgoingResponse::new(Fields::new());
        let Ok(body) = response.body() else {
            return;
        };
        ResponseOutparam::set(response_out, Ok(response));
        if let Ok(stream) = body.write() {
            // A body this small always fits the stream's first write permit.
            let _ = stream.blocking_write_and_flush(b"{}");
        }
        let _ = OutgoingBody::finish(body, None);
    }
}

export!(Hello);
