//! Spin's key-value interface (`spin:key-value/key-value@3.0.0`, host/src/kv)
//! from a plain spin-sdk 7 component (components/kv-probe) over a real socket:
//! get, set, delete, exists and get-keys; stores apart by label, also when two
//! labels share one database file; a label the component does not list gets
//! Spin's `access-denied`; values survive a restart of the server; a label that
//! nothing configures stops the server at start, as Spin refuses to start.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use support::{request, root, Server};

/// A manifest with the probe twice: `/kv/...` may open `default`, `votes` and
/// `scratch`; `/limited/kv/...` only `default`.
fn manifest(dir: &Path, extra_label: Option<&str>) -> PathBuf {
    let wasm = root().join("target/wasm/kv-probe.wasm");
    let extra = extra_label.map(|l| format!(", \"{l}\"")).unwrap_or_default();
    let text = format!(
        "spin_manifest_version = 2\n[application]\nname = \"kv-test\"\n\
         [[trigger.http]]\nroute = \"/kv/...\"\ncomponent = \"probe\"\n\
         [[trigger.http]]\nroute = \"/limited/kv/...\"\ncomponent = \"limited\"\n\
         [component.probe]\nsource = {wasm:?}\nkey_value_stores = [\"default\", \"votes\", \"scratch\"{extra}]\n\
         [component.limited]\nsource = {wasm:?}\nkey_value_stores = [\"default\"]\n"
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).expect("writing the manifest");
    path
}

/// A runtime config: the default model (no embedding models), and `votes` and
/// `scratch` in one shared file.
fn runtime_config(dir: &Path) -> PathBuf {
    let text = format!(
        "[models.smollm2-135m]\npath = {:?}\n[embedding_models]\n\
         [key_value_store.votes]\ntype = \"spin\"\npath = {:?}\n\
         [key_value_store.scratch]\ntype = \"spin\"\npath = {:?}\n",
        support::default_model(),
        dir.join("shared.db"),
        dir.join("shared.db"),
    );
    let path = dir.join("runtime-config.toml");
    std::fs::write(&path, text).expect("writing the runtime config");
    path
}

fn start(dir: &Path) -> Server {
    let manifest = manifest(dir, None);
    let config = runtime_config(dir);
    let state = dir.join("state");
    Server::spawn(&manifest, &["--runtime-config", &config.to_string_lossy(), "--state-dir", &state.to_string_lossy()])
}

fn call(server: &Server, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let r = request(&server.addr, method, path, body);
    let v = if r.body.is_empty() { Value::Null } else { serde_json::from_str(&r.body).unwrap_or_else(|_| panic!("{path}: {}", r.body)) };
    (r.status, v)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reka-kv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn a_spin_sdk_component_gets_sets_deletes_and_lists_apart_by_store() {
    let dir = temp_dir("ops");
    let server = start(&dir);
    assert_eq!(call(&server, "GET", "/kv/default/colour", None), (404, json!({"value": null})));
    assert_eq!(call(&server, "GET", "/kv/default/colour?exists", None), (200, json!({"exists": false})));
    assert_eq!(call(&server, "PUT", "/kv/default/colour", Some("blue")).0, 200);
    assert_eq!(call(&server, "PUT", "/kv/default/shape", Some("round")).0, 200);
    assert_eq!(call(&server, "PUT", "/kv/default/colour", Some("red")).0, 200);
    assert_eq!(call(&server, "GET", "/kv/default/colour", None), (200, json!({"value": "red"})));
    assert_eq!(call(&server, "GET", "/kv/default/colour?exists", None), (200, json!({"exists": true})));
    assert_eq!(call(&server, "GET", "/kv/default", None), (200, json!({"keys": ["colour", "shape"]})));

    // The same key in other stores, two of them in one file: each its own.
    assert_eq!(call(&server, "PUT", "/kv/votes/colour", Some("green")).0, 200);
    assert_eq!(call(&server, "GET", "/kv/scratch/colour", None), (404, json!({"value": null})));
    assert_eq!(call(&server, "PUT", "/kv/scratch/only-here", Some("x")).0, 200);
    assert_eq!(call(&server, "GET", "/kv/votes/colour", None), (200, json!({"value": "green"})));
    assert_eq!(call(&server, "GET", "/kv/default/colour", None), (200, json!({"value": "red"})));
    assert_eq!(call(&server, "GET", "/kv/votes", None), (200, json!({"keys": ["colour"]})));
    assert_eq!(call(&server, "GET", "/kv/scratch", None), (200, json!({"keys": ["only-here"]})));

    // Delete, twice (no error the second time).
    assert_eq!(call(&server, "DELETE", "/kv/default/colour", None).0, 200);
    assert_eq!(call(&server, "DELETE", "/kv/default/colour", None).0, 200);
    assert_eq!(call(&server, "GET", "/kv/default/colour?exists", None), (200, json!({"exists": false})));
    assert_eq!(call(&server, "GET", "/kv/default", None), (200, json!({"keys": ["shape"]})));
    assert_eq!(call(&server, "GET", "/kv/votes/colour", None), (200, json!({"value": "green"})));

    // The limited component sees `default` and nothing else, as Spin decides.
    assert_eq!(call(&server, "GET", "/limited/kv/default/shape", None), (200, json!({"value": "round"})));
    assert_eq!(call(&server, "GET", "/limited/kv/votes/colour", None), (403, json!({"error": "access-denied"})));
    assert_eq!(call(&server, "GET", "/kv/nowhere/x", None), (403, json!({"error": "access-denied"})));

    // A restart keeps every store's values (default in --state-dir, the others in their file).
    drop(server);
    let server = start(&dir);
    assert_eq!(call(&server, "GET", "/kv/default", None), (200, json!({"keys": ["shape"]})));
    assert_eq!(call(&server, "GET", "/kv/votes/colour", None), (200, json!({"value": "green"})));
    assert_eq!(call(&server, "GET", "/kv/scratch/only-here", None), (200, json!({"value": "x"})));
    assert!(dir.join("state/sqlite_key_value.db").is_file());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_store_nothing_configures_stops_the_server_at_start() {
    let dir = temp_dir("unknown");
    let manifest = manifest(&dir, Some("elsewhere"));
    let config = runtime_config(&dir);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reka-host"))
        .args(["serve", "--listen", "127.0.0.1:0", "--manifest"])
        .arg(&manifest)
        .arg("--runtime-config")
        .arg(&config)
        .output()
        .expect("running reka-host");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"elsewhere\"") && stderr.contains("key_value_store.elsewhere"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
