//! cargo-fuzz target `image`: the body is [`reka_fuzz_targets::image`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| reka_fuzz_targets::image(data));
