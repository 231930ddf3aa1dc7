//! A wasi:http 0.2 component that misbehaves on purpose, one way per path, so
//! that the host's per-request limits are tested against a real guest:
//! `/loop` spins forever, `/alloc` allocates until memory runs out, `/trap`
//! panics; any other path answers `200 ok` (the server still serves).

use std::hint::black_box;
use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Misbehave;

impl wasip2::exports::http::incoming_handler::Guest for Misbehave {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let last = path.rsplit('/').next().unwrap_or_default();
        match last {
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut held: Vec<Vec<u8>> = Vec::new();
                loop {
                    // Touch every page so the memory is really used.
                    held.push(black_box(vec![1u8; 1 << 20]));
                }
            }
            "trap" => panic!("this guest traps on purpose"),
            _ => answer(out, b"ok"),
        }
    }
}

fn answer(out: ResponseOutparam, text: &[u8]) {
    let resp = OutgoingResponse::new(Fields::new());
    let Ok(body) = resp.body() else { return };
    ResponseOutparam::set(out, Ok(resp));
    if let Ok(stream) = body.write() {
        let _ = stream.blocking_write_and_flush(text);
    }
    let _ = OutgoingBody::finish(body, None);
}

wasip2::http::proxy::export!(Misbehave);
