//! A wasmtime embedder of the Reka app, start to finish: load a model with
//! `reka-engine`, build a linker with WASI p2, `wasi:http` and `wasi:nn` (our
//! backend), instantiate the composed app and hand it one HTTP request in
//! process (no socket), then print the response body.
//!
//! Usage: `reka-embed-example [MODEL] [APP_WASM] [PROMPT]`
//! (defaults: the SmolLM2 GGUF that `reka-host fetch` caches,
//! `target/wasm/reka-app.wasm`, "The capital of France is").

use anyhow::{anyhow, Context, Result};
use http_body_util::{BodyExt, Full};
use reka_engine::{fetch, model, nn::Models};
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
use wasmtime_wasi_nn::wit::{WasiNnCtx, WasiNnView};

/// What one store (one request) holds: a resource table shared by the three
/// WASI contexts, and the wasi:nn context that sees the shared models.
struct State {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    nn: WasiNnCtx,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: wasmtime_wasi_http::default_hooks() }
    }
}

/// wasmtime 48's errors are not `anyhow::Error`s.
fn wt(e: wasmtime::Error) -> anyhow::Error {
    anyhow!("{e:?}")
}

// wasi:nn's `compute` blocks until the engine thread has run the step: keep a
// multi-threaded runtime so that the blocking does not stall other tasks.
#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let model_path = args.next().map(PathBuf::from).unwrap_or_else(|| fetch::DEFAULT_MODEL.path(&fetch::cache_dir()));
    let wasm_path = args.next().unwrap_or_else(|| "target/wasm/reka-app.wasm".into());
    let prompt = args.next().unwrap_or_else(|| "The capital of France is".into());

    // 1. Load the model once. Its name is the graph name guests ask for with
    //    `load-by-name`; the first model of `Models` is the default.
    let name = fetch::DEFAULT_MODEL.name;
    let loaded = model::load(name, &model_path).with_context(|| format!("loading {}", model_path.display()))?;
    let models = Models::new(vec![(name.to_string(), Arc::new(loaded))])?;

    // 2. One engine and one linker for every request: WASI p2, wasi:http, and
    //    wasi:nn with our backend behind it.
    let engine = Engine::default();
    let mut linker: Linker<State> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wt)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(wt)?;
    wasmtime_wasi_nn::wit::add_to_linker(&mut linker, |s: &mut State| WasiNnView::new(&mut s.table, &mut s.nn))
        .map_err(wt)?;

    // 3. Compile and pre-instantiate the app (gateway + preprocess + generate,
    //    composed into one component that exports wasi:http/incoming-handler).
    let component = Component::from_file(&engine, &wasm_path).map_err(wt).with_context(|| format!("compiling {wasm_path}"))?;
    let pre = ProxyPre::new(linker.instantiate_pre(&component).map_err(wt)?).map_err(wt)?;

    // 4. A fresh store per request. The gateway reads the served models from
    //    the environment, as `reka-host` sets it.
    let mut wasi = WasiCtx::builder();
    wasi.inherit_stderr().env("REKA_MODELS", name).env("REKA_MODEL_INPUTS", models.listing());
    let state = State {
        table: ResourceTable::new(),
        wasi: wasi.build(),
        http: WasiHttpCtx::new(),
        nn: WasiNnCtx::new([], models.registry()),
    };
    let mut store = Store::new(&engine, state);

    // 5. The request, handed to the guest as wasi:http resources.
    let body = serde_json::json!({ "prompt": prompt, "max_tokens": 8, "temperature": 0 }).to_string();
    let request = http::Request::post("http://localhost/v1/completions")
        .header("content-type", "application/json")
        .body(Full::new(body.into_bytes().into()))?;
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let req = store.data_mut().http().new_incoming_request(Scheme::Http, request).map_err(wt)?;
    let out = store.data_mut().http().new_response_outparam(sender).map_err(wt)?;

    // 6. Run the handler in its own task: the guest keeps writing the body
    //    after it has sent the response head.
    let guest = tokio::spawn(async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await
    });
    let response = match receiver.await {
        Ok(r) => r.map_err(|e| anyhow!("the guest answered with an error: {e:?}"))?,
        Err(_) => return Err(anyhow!("the guest sent no response: {:?}", guest.await?.err())),
    };
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| anyhow!("reading the body: {e:?}"))?.to_bytes();
    guest.await?.map_err(wt)?;

    eprintln!("HTTP {status}");
    println!("{}", String::from_utf8_lossy(&body));
    if !status.is_success() {
        return Err(anyhow!("the app answered {status}"));
    }
    Ok(())
}
