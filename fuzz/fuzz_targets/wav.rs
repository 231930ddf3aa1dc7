//! cargo-fuzz target `wav`: the body is [`reka_fuzz_targets::wav`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| reka_fuzz_targets::wav(data));
