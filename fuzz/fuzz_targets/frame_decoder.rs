//! Fuzz target: arbitrary bytes as one incoming stream for the frame decoder.
//!
//! The invariants live in `aos_transport::frame::check_decoder`, which the transport crate's tests also run
//! over `fuzz/corpus/frame_decoder/` on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = aos_transport::frame::check_decoder(data) {
        panic!("frame decoder invariant violated: {violation}");
    }
});
