//! The example as a user runs it: the built binary, the SmolLM2 GGUF that
//! `reka-host fetch` caches (scripts/setup.sh fetches it) and the composed app
//! that the host's build writes (target/wasm/reka-app.wasm); its one
//! in-process request must answer with a completion. Built with the rest of
//! the workspace, so wasmtime is compiled once for both.

use reka_engine::fetch;
use std::process::Command;

#[test]
fn one_request_to_the_composed_app_is_a_completion() {
    let model = fetch::DEFAULT_MODEL.path(&fetch::cache_dir());
    assert!(model.exists(), "{} is missing: run `reka-host fetch` (scripts/setup.sh does)", model.display());
    let app = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/wasm/reka-app.wasm");
    let out = Command::new(env!("CARGO_BIN_EXE_reka-embed-example")).arg(&model).arg(app).arg("The capital of France is").output().expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
    let body: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    let text = body["choices"][0]["text"].as_str().or(body["choices"][0]["message"]["content"].as_str());
    assert!(text.is_some_and(|t| !t.is_empty()), "{body}");
}
