//! Builds the wasm components (their own workspace, target wasm32-wasip2) and
//! composes them into the one deployable app component,
//! `target/wasm/reka-app.wasm`, that `spin.toml` names. Building the host is the
//! one command: no manual step.
//!
//! Set `REKA_SKIP_COMPONENTS=1` to skip (e.g. when only the host's Rust is checked).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "src/compose.rs"]
#[allow(dead_code)] // `imports` is the server's
mod compose;

const TARGET: &str = "wasm32-wasip2";

fn main() -> Result<()> {
    let host_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = host_dir.parent().context("host has a parent")?.to_path_buf();
    // Not the whole components/ folder: its target/ changes on every build.
    for watched in [
        "components/Cargo.toml",
        "components/Cargo.lock",
        "components/gateway",
        "components/preprocess",
        "components/generate",
        "components/spin-llm",
        "components/guest",
        "components/p3-hello",
        "components/misbehave",
        "components/playground",
        "components/arena",
        "components/kv-probe",
        "crates",
        "wit",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=REKA_SKIP_COMPONENTS");
    if std::env::var_os("REKA_SKIP_COMPONENTS").is_some() {
        return Ok(());
    }
    let built = build_components(&root)?;
    let read = |name: &str| -> Result<(&str, Vec<u8>)> {
        let (n, path) = built.iter().find(|(n, _)| *n == name).context("built components")?;
        Ok((*n, std::fs::read(path).with_context(|| format!("reading {}", path.display()))?))
    };
    // The app: the gateway over preprocess, generate and the Spin LLM
    // provider (its `/infer`). The playground and the arena are components of
    // their own (spin.toml); p3-hello (the p3 path), misbehave (the
    // per-request limits) and kv-probe (the key-value stores) are test guests.
    let app = compose::chain(&[read("preprocess")?, read("generate")?, read("spin_llm")?, read("gateway")?])?;
    // The Spin LLM provider alone (exports `fermyon:spin/llm@2.0.0`): the host
    // plugs it into Spin apps that import that interface.
    let llm = compose::chain(&[read("preprocess")?, read("generate")?, read("spin_llm")?])?;
    let out_dir = root.join("target").join("wasm");
    std::fs::create_dir_all(&out_dir)?;
    for (name, path) in &built {
        std::fs::copy(path, out_dir.join(format!("{}.wasm", name.replace('_', "-"))))?;
    }
    let app_path = out_dir.join("reka-app.wasm");
    std::fs::write(&app_path, app)?;
    let llm_path = out_dir.join("reka-llm.wasm");
    std::fs::write(&llm_path, llm)?;
    println!("cargo:rustc-env=REKA_LLM_WASM={}", llm_path.display());
    println!("cargo:rustc-env=REKA_APP_WASM={}", app_path.display());
    Ok(())
}

/// Runs cargo on the components workspace, in a clean environment so that the
/// outer build's flags, wrappers (clippy) and target do not leak in.
fn build_components(root: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
    let manifest = root.join("components").join("Cargo.toml");
    let target_dir = root.join("components").join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        let leaks = (k.starts_with("CARGO_") && k != "CARGO_HOME")
            || k.starts_with("RUSTC")
            || k == "RUSTFLAGS"
            || k == "RUSTDOCFLAGS"
            || k == "TARGET"
            || k == "HOST"
            || k == "OUT_DIR";
        if leaks {
            cmd.env_remove(&k);
        }
    }
    let status = cmd.status().context("running cargo for the components")?;
    if !status.success() {
        bail!(
            "building the wasm components failed ({status}); is the target installed? \
             run `rustup target add {TARGET}`"
        );
    }
    let dir = target_dir.join(TARGET).join("release");
    Ok(["gateway", "preprocess", "generate", "spin_llm", "p3_hello", "misbehave", "playground", "arena_app", "kv_probe"]
        .into_iter()
        .map(|n| (n, dir.join(format!("reka_{n}.wasm"))))
        .collect())
}
