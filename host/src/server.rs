//! The HTTP server: accepts connections, routes each request by `spin.toml` to a
//! pre-instantiated component, and runs it in a fresh [`Store`] with WASI,
//! `wasi:http` and our `wasi:nn` backend. Models are shared by every store.
//!
//! Around that: the [`Policy`] (API keys, CORS, caps on connections and
//! requests in flight, timeouts), per-request wasm limits (crate::limits),
//! cancellation of requests whose client has gone (crate::guarded_body), a
//! request id on every response, and a shutdown that refuses new connections
//! at once and ends open event streams cleanly.

use crate::access::{ApiKeys, Cors};
use crate::connections::{AcceptErrors, Admission, ConnLimits, Connections};
use crate::guarded_body::{Deadline, GuardedBody, GuestTask, Held};
use crate::limits::{GuestLimits, LimitHit};
use crate::manifest::{App, Component as AppComponent};
use crate::timed_body::TimedBody;
use crate::nn::Models;
use crate::outbound::OutboundPolicy;
use crate::p3::{P3Request, P3State};
use http_body_util::BodyExt;
use wasmtime_wasi_http::handler::ProxyHandler;
use crate::state::RequestState;
use anyhow::{Context, Result};
use hyper::server::conn::http1;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use hyper_util::rt::TokioTimer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tracing::Instrument;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// A component ready to serve, by the wasi:http version it exports.
enum Served {
    /// `wasi:http/incoming-handler@0.2`: a fresh store per request, run here.
    P2 {
        pre: ProxyPre<RequestState>,
        spec: Box<AppComponent>,
        outbound: OutboundPolicy,
    },
    /// `wasi:http/handler@0.3`: wasmtime-wasi-http's handler drives the store's
    /// event loop; one store per request as well.
    P3 {
        handler: ProxyHandler<P3State>,
        limits: GuestLimits,
    },
}

/// How the server treats its clients: keys, CORS, and how much each may hold.
#[derive(Debug, Clone)]
pub struct Policy {
    pub api_keys: ApiKeys,
    pub cors: Cors,
    pub conn: ConnLimits,
    /// Requests being answered at once; more get 503 with Retry-After.
    pub max_in_flight: usize,
    /// How long shutdown waits for open requests before ending them.
    pub shutdown_grace: Duration,
    /// How long a client may take to send a request's body.
    pub body_timeout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            api_keys: ApiKeys::default(),
            cors: Cors::default(),
            conn: ConnLimits {
                max_connections: ConnLimits::default_max_connections(),
                idle_timeout: Duration::from_secs(30),
                header_timeout: Duration::from_secs(10),
            },
            max_in_flight: 256,
            shutdown_grace: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
        }
    }
}

/// Everything a request needs, shared by all connections.
pub struct Server {
    app: App,
    components: HashMap<String, Served>,
    models: Models,
    policy: Policy,
    conns: Arc<Connections>,
    in_flight: Arc<Semaphore>,
    /// Becomes true when the shutdown deadline has come.
    deadline: watch::Sender<bool>,
    next_id: AtomicU64,
}

/// The interface Spin apps reach models through.
pub const SPIN_LLM: &str = "fermyon:spin/llm@2.0.0";

/// Where the Spin LLM provider is (`target/wasm/reka-llm.wasm`, composed by
/// the build): `REKA_LLM_WASM` at run time, else where this build put it.
pub fn spin_llm_provider() -> Result<Vec<u8>> {
    let path = std::env::var_os("REKA_LLM_WASM")
        .map(std::path::PathBuf::from)
        .or_else(|| option_env!("REKA_LLM_WASM").map(Into::into))
        .context("no Spin LLM provider: set REKA_LLM_WASM to reka-llm.wasm")?;
    std::fs::read(&path).with_context(|| format!("reading the Spin LLM provider {}", path.display()))
}

/// A component that imports [`SPIN_LLM`] with the Spin LLM provider plugged
/// into that import (so its `llm::infer` runs on this host's models); any
/// other component as it is.
fn with_spin_llm(id: &str, bytes: Vec<u8>) -> Result<Vec<u8>> {
    // A core module or an unreadable component is left to the compiler's error.
    if !crate::compose::imports(&bytes, SPIN_LLM).unwrap_or(false) {
        return Ok(bytes);
    }
    let provider = spin_llm_provider()?;
    let composed = crate::compose::chain(&[("reka-llm", provider), (id, bytes)])
        .with_context(|| format!("plugging the Spin LLM provider into component {id}"))?;
    tracing::info!(component = %id, "component imports {SPIN_LLM}: the Spin LLM provider is plugged in");
    Ok(composed)
}

/// Where compiled components are cached: `REKA_COMPILE_CACHE` (an absolute
/// directory, or `off`), else wasmtime's default (`~/.cache/wasmtime`).
pub const COMPILE_CACHE_ENV: &str = "REKA_COMPILE_CACHE";

/// wasmtime's on-disk cache of compiled code, keyed by the component's bytes,
/// the compiler, its settings and wasmtime's version: a restart (or another
/// server on the machine) loads the app instead of compiling it again, which
/// takes ~10 s for the composed app on 2 cores. `None` when switched off, or
/// when its folder cannot be made (a read-only home): the server then compiles
/// at every start, as it did without the cache, and says so.
fn compile_cache() -> Option<wasmtime::Cache> {
    let mut config = wasmtime::CacheConfig::new();
    match std::env::var(COMPILE_CACHE_ENV) {
        Ok(v) if v == "off" || v == "0" => return None,
        Ok(dir) if !dir.is_empty() => {
            config.with_directory(dir);
        }
        _ => {}
    }
    wasmtime::Cache::new(config)
        .map_err(|e| tracing::warn!("no compile cache, components compile at every start ({COMPILE_CACHE_ENV}): {e}"))
        .ok()
}

/// The wasmtime engine configuration used for serving.
pub fn engine() -> Result<Engine> {
    let mut cfg = wasmtime::Config::new();
    cfg.wasm_component_model(true);
    cfg.wasm_component_model_async(true);
    cfg.cache(compile_cache());
    // Per-request time limits and cancellation points (crate::limits).
    cfg.epoch_interruption(true);
    let engine = Engine::new(&cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::limits::start_ticker(&engine).context("starting the epoch ticker")?;
    Ok(engine)
}

impl Server {
    /// Compiles and pre-instantiates every component of `app`.
    pub fn new(engine: &Engine, app: App, models: Models) -> Result<Self> {
        Self::with_policy(engine, app, models, Policy::default())
    }

    /// As [`Server::new`], treating clients by `policy`.
    pub fn with_policy(engine: &Engine, app: App, models: Models, policy: Policy) -> Result<Self> {
        let mut linker: Linker<RequestState> = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wt)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(wt)?;
        wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(wt)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker).map_err(wt)?;
        wasmtime_wasi_nn::wit::add_to_linker(&mut linker, |s: &mut RequestState| s.nn_view())
            .map_err(wt)?;
        crate::kv::add_to_linker(&mut linker, RequestState::kv_view).map_err(wt)?;
        let mut app = app;
        let stores = crate::kv::KvStores::open(
            app.components.values().flat_map(|c| c.key_value_stores.iter().map(String::as_str)),
            &app.key_value,
            &app.state_dir,
        )?;
        for c in app.components.values_mut() {
            c.kv = stores.access(&c.key_value_stores);
        }
        let mut components = HashMap::new();
        for (id, spec) in &app.components {
            let started = Instant::now();
            let bytes = std::fs::read(&spec.source)
                .with_context(|| format!("reading component {id} from {}", spec.source.display()))?;
            let bytes = with_spin_llm(id, bytes)?;
            let component = Component::new(engine, &bytes)
                .map_err(wt)
                .with_context(|| format!("compiling component {id} from {}", spec.source.display()))?;
            let instance_pre = linker.instantiate_pre(&component).map_err(wt)?;
            let outbound = OutboundPolicy::new(&spec.allowed_outbound_hosts)
                .map_err(|e| anyhow::anyhow!("component {id}: {e}"))?;
            let served = match ProxyPre::new(instance_pre.clone()) {
                Ok(pre) => Served::P2 {
                    pre,
                    spec: Box::new(spec.clone()),
                    outbound,
                },
                Err(p2_err) => {
                    let state = P3State::new(instance_pre, spec.clone(), models.clone(), outbound)
                        .map_err(|p3_err| {
                            anyhow::anyhow!(
                                "component {id} exports neither wasi:http/incoming-handler@0.2 \
                                 ({p2_err}) nor wasi:http/handler@0.3 ({p3_err})"
                            )
                        })?;
                    Served::P3 {
                        handler: ProxyHandler::new(state),
                        limits: spec.limits,
                    }
                }
            };
            let kind = if matches!(served, Served::P2 { .. }) { "p2" } else { "p3" };
            tracing::info!(component = %id, wasi_http = kind, ms = started.elapsed().as_millis() as u64, "component ready");
            components.insert(id.clone(), served);
        }
        Ok(Self {
            app,
            components,
            models,
            conns: Connections::new(policy.conn),
            in_flight: Arc::new(Semaphore::new(policy.max_in_flight.max(1))),
            policy,
            deadline: watch::channel(false).0,
            next_id: AtomicU64::new(0),
        })
    }

    /// Serves on `listener` until `shutdown` resolves. Then the listener closes
    /// at once (new connections are refused), idle connections close, open
    /// requests get [`Policy::shutdown_grace`] to finish, and event streams still
    /// open after it end with an error event and `[DONE]`.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut tasks = tokio::task::JoinSet::new();
        let mut errors = AcceptErrors::default();
        let (stop_tx, stop_rx) = watch::channel(false);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of descriptors (or another transient error): make
                            // room if an idle connection can go, and back off.
                            let freed = match e.raw_os_error() {
                                // EMFILE, ENFILE: the descriptor limit is lower than the cap.
                                Some(24 | 23) => self.conns.out_of_descriptors(),
                                _ => self.conns.close_longest_idle(),
                            };
                            tokio::time::sleep(errors.failed(&e, freed)).await;
                            continue;
                        }
                    };
                    errors.succeeded();
                    while tasks.try_join_next().is_some() {}
                    let server = self.clone();
                    let stop = stop_rx.clone();
                    tasks.spawn(async move { server.connection(stream, peer, stop).await });
                }
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        tracing::info!("shutting down: listener closed; waiting up to {:?} for {} connection(s)", self.policy.shutdown_grace, tasks.len());
        let drain = async { while tasks.join_next().await.is_some() {} };
        let mut drain = std::pin::pin!(drain);
        if tokio::time::timeout(self.policy.shutdown_grace, &mut drain).await.is_err() {
            tracing::warn!("requests still open after {:?}; ending them", self.policy.shutdown_grace);
            let _ = self.deadline.send(true);
            if tokio::time::timeout(Duration::from_secs(2), &mut drain).await.is_err() {
                self.conns.close_all();
                let _ = tokio::time::timeout(Duration::from_secs(1), &mut drain).await;
            }
        }
        Ok(())
    }

    async fn connection(self: Arc<Self>, stream: TcpStream, peer: SocketAddr, mut stop: watch::Receiver<bool>) {
        let handle = match self.conns.admit() {
            Admission::Serve(h) => h,
            Admission::Refuse => return refuse(stream).await,
        };
        let id = handle.id();
        let server = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let server = server.clone();
            async move { server.handle(req, id).await }
        });
        let mut builder = http1::Builder::new();
        builder
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(self.policy.conn.header_timeout);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let mut conn = std::pin::pin!(conn);
        let mut draining = false;
        let result = loop {
            tokio::select! {
                r = conn.as_mut() => break r,
                _ = handle.close.notified() => { tracing::debug!(%peer, "connection closed to make room"); return; }
                _ = handle.idle_expired() => { tracing::debug!(%peer, "idle connection closed"); return; }
                _ = stop.changed(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, "connection ended: {e}");
        }
    }

    /// A request id: the client's `x-request-id` if it is a sane one, else a new one.
    fn request_id(&self, headers: &hyper::HeaderMap) -> String {
        let given = headers.get("x-request-id").and_then(|v| v.to_str().ok()).filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        });
        match given {
            Some(v) => v.to_string(),
            None => {
                let n = self.next_id.fetch_add(1, Ordering::Relaxed);
                let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
                format!("req-{t:x}-{n}")
            }
        }
    }

    async fn handle(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
        conn: u64,
    ) -> Result<hyper::Response<HyperOutgoingBody>, std::convert::Infallible> {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        let started = Instant::now();
        let request_id = self.request_id(req.headers());
        let mut req = req;
        // The guest sees the id too, to name it in its own log lines.
        if let Ok(v) = hyper::header::HeaderValue::from_str(&request_id) {
            req.headers_mut().insert("x-request-id", v);
        }
        let req_headers = req.headers().clone();
        let span = tracing::info_span!("request", id = %request_id);
        let mut held = Held { busy: Some(self.conns.busy(conn)), ..Held::default() };
        let mut resp = self.respond(req, &path, &method, &mut held).instrument(span.clone()).await;
        let preflight = self.policy.cors.is_preflight(&method, &req_headers);
        self.policy.cors.decorate(&req_headers, resp.headers_mut(), preflight);
        if let Ok(v) = hyper::header::HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        let status = resp.status().as_u16();
        crate::metrics::http_request(status);
        let _enter = span.enter();
        tracing::info!(%method, %path, status, first_byte_ms = started.elapsed().as_secs_f64() * 1e3, "request");
        let is_sse = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let deadline: Option<Deadline> = is_sse.then(|| Box::pin(reached(self.deadline.subscribe())) as Deadline);
        Ok(resp.map(|body| GuardedBody::wrap(body, held, deadline)))
    }

    /// The response to one request, before its body is wrapped.
    async fn respond(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
        path: &str,
        method: &hyper::Method,
        held: &mut Held,
    ) -> hyper::Response<HyperOutgoingBody> {
        if self.policy.cors.is_preflight(method, req.headers()) {
            let mut resp = crate::errors::empty(204);
            *resp.status_mut() = hyper::StatusCode::NO_CONTENT;
            return resp;
        }
        if !self.policy.api_keys.allows(path, req.headers()) {
            let mut resp = crate::errors::response_typed(
                401,
                "invalid_request_error",
                "invalid_api_key",
                "Incorrect or missing API key: send it as `Authorization: Bearer <key>`.",
            );
            resp.headers_mut()
                .insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("Bearer"));
            return resp;
        }
        if path == "/metrics" && method == hyper::Method::GET {
            return crate::errors::text(200, "text/plain; version=0.0.4; charset=utf-8", crate::metrics::render());
        }
        let Some(served) = self.app.route(path).and_then(|c| self.components.get(&c.id)) else {
            return crate::errors::response(404, "not_found", &format!("no route for {path}"));
        };
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            return crate::errors::retry_later(format!(
                "the server is answering its maximum of {} requests; retry shortly",
                self.policy.max_in_flight
            ));
        };
        held.permit = Some(permit);
        match self.run(served, req, held).await {
            Ok(r) => r,
            Err(Failure::Limit(message)) => {
                tracing::warn!("{message}");
                crate::errors::response(500, "server_error", &message)
            }
            Err(Failure::ShuttingDown) => crate::errors::retry_later("the server is shutting down".into()),
            Err(Failure::Internal(e)) => {
                tracing::error!(%path, "component failed: {e:#}");
                crate::errors::response(500, "server_error", "the request failed inside the server; its x-request-id names it in the server's log")
            }
        }
    }

    async fn run(
        &self,
        served: &Served,
        req: hyper::Request<hyper::body::Incoming>,
        held: &mut Held,
    ) -> Result<hyper::Response<HyperOutgoingBody>, Failure> {
        let timeout = self.policy.body_timeout;
        let (pre, spec, outbound) = match served {
            Served::P2 { pre, spec, outbound } => (pre, spec, outbound),
            Served::P3 { handler, limits } => {
                let req = req.map(|b| TimedBody::new(b, timeout).boxed_unsync());
                let (gone, client_gone) = tokio::sync::oneshot::channel();
                held.guest = Some(GuestTask::signal(gone));
                let hit = Arc::new(std::sync::OnceLock::new());
                let request = P3Request { gone: client_gone, hit: hit.clone() };
                return handler.handle(request, req).await.map_err(|e| {
                    match hit.get().and_then(|h| h.message(limits)) {
                        Some(m) => Failure::Limit(m),
                        None => Failure::Internal(wt(e)),
                    }
                });
            }
        };
        let hit = LimitHit::default();
        let state = RequestState::new(spec, &self.models, outbound.clone(), hit.clone()).map_err(Failure::Internal)?;
        let mut store = Store::new(pre.engine(), state);
        crate::limits::apply(&mut store, spec.limits, hit.clone());
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (req, out) = {
            let mut http = store.data_mut().http_view();
            let req = http.new_incoming_request(Scheme::Http, req.map(|b| TimedBody::new(b, timeout))).map_err(|e| Failure::Internal(wt(e)))?;
            let out = http.new_response_outparam(sender).map_err(|e| Failure::Internal(wt(e)))?;
            (req, out)
        };
        let pre = pre.clone();
        // The guest keeps running after it sends the head (streaming bodies), so it
        // runs in its own task; the task is aborted if the client goes first.
        let task = tokio::task::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        });
        held.guest = Some(GuestTask::new(task.abort_handle()));
        let deadline = self.deadline.subscribe();
        let limit = |e: wasmtime::Error| match hit.message(&spec.limits) {
            Some(m) => Failure::Limit(m),
            None => Failure::Internal(anyhow::anyhow!("the component trapped: {e:?}")),
        };
        tokio::select! {
            got = receiver => match got {
                Ok(Ok(resp)) => Ok(resp),
                Ok(Err(e)) => Err(Failure::Internal(anyhow::anyhow!("guest error: {e:?}"))),
                Err(_) => match task.await {
                    Ok(Ok(())) => Err(Failure::Internal(anyhow::anyhow!("the component sent no response"))),
                    Ok(Err(e)) => Err(limit(e)),
                    Err(e) => Err(Failure::Internal(anyhow::anyhow!("the component task failed: {e}"))),
                },
            },
            _ = reached(deadline) => Err(Failure::ShuttingDown),
        }
    }
}

/// Why a request got no response from its component.
enum Failure {
    /// A per-request limit stopped it (the message names which).
    Limit(String),
    /// The shutdown deadline came first.
    ShuttingDown,
    /// Anything else: details go to the log only.
    Internal(anyhow::Error),
}

/// Resolves once `rx` holds true (never, if its sender goes first).
async fn reached(mut rx: watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Answers a connection over the cap with 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = r#"{"error":{"message":"too many open connections; retry shortly","type":"server_error","param":null,"code":"overloaded"}}"#;
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// Converts a wasmtime error (not an `anyhow::Error` in wasmtime 48).
pub fn wt(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:?}")
}
