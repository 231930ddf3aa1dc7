//! cargo-fuzz target `video`: the body is [`reka_fuzz_targets::video`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| reka_fuzz_targets::video(data));
