//! cargo-fuzz target `gguf`: the body is [`reka_fuzz_targets::gguf`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| reka_fuzz_targets::gguf(data));
