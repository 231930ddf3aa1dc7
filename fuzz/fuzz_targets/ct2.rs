//! cargo-fuzz target `ct2`: the body is [`reka_fuzz_targets::ct2`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| reka_fuzz_targets::ct2(data));
