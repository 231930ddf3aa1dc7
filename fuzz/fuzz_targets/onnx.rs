//! cargo-fuzz target `onnx`: the body is [`reka_fuzz_targets::onnx`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| reka_fuzz_targets::onnx(data));
