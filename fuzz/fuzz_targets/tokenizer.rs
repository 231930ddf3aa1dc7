//! cargo-fuzz target `tokenizer`: the body is [`reka_fuzz_targets::tokenizer`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| reka_fuzz_targets::tokenizer(data));
