//! The protocol's per-message cost inside Chromium, to set next to the same workload measured
//! natively by `protocol/benches/ratchet.rs` (`cargo xtask bench` runs both and prints the
//! ratio). Workloads: `Session::encrypt` + `Session::decrypt` of one 256-byte message, in one
//! direction (no DH step) and ping-pong (a DH ratchet step on every message).

#![allow(missing_docs, clippy::unwrap_used)]
#![cfg(target_arch = "wasm32")]

use protocol::testing::{SeededRng, joined_pair, transfer};
use wasm_bindgen_test::{Criterion, wasm_bindgen_bench, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_bench]
fn protocol_in_browser(c: &mut Criterion) {
    let text = [0x61u8; 256];
    let (mut a, mut b, mut rng): (_, _, SeededRng) = joined_pair(2);
    c.bench_function("browser/protocol/one_direction", |bench| {
        bench.iter(|| transfer(&mut a, &mut b, &mut rng, &text))
    });
    let (mut a, mut b, mut rng) = joined_pair(3);
    let mut forward = true;
    c.bench_function("browser/protocol/ping_pong", |bench| {
        bench.iter(|| {
            if forward {
                transfer(&mut a, &mut b, &mut rng, &text);
            } else {
                transfer(&mut b, &mut a, &mut rng, &text);
            }
            forward = !forward;
        })
    });
}
