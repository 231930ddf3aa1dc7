//! The HTTP server: accepts connections, routes each request by `spin.toml` to a
//! pre-instantiated component, and runs it in a fresh [`Store`] with WASI,
//! `wasi:http` and our `wasi:nn` backend. Models are shared by every store.

use crate::manifest::{App, Component as AppComponent};
use crate::nn::Models;
use crate::outbound::OutboundPolicy;
use crate::p3::P3State;
use http_body_util::BodyExt;
use wasmtime_wasi_http::handler::ProxyHandler;
use crate::state::RequestState;
use anyhow::{Context, Result};
use hyper::server::conn::http1;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
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
        spec: AppComponent,
        outbound: OutboundPolicy,
    },
    /// `wasi:http/handler@0.3`: wasmtime-wasi-http's handler drives the store's
    /// event loop; one store per request as well.
    P3(ProxyHandler<P3State>),
}

/// Everything a request needs, shared by all connections.
pub struct Server {
    app: App,
    components: HashMap<String, Served>,
    models: Models,
}

/// The wasmtime engine configuration used for serving.
pub fn engine() -> Result<Engine> {
    let mut cfg = wasmtime::Config::new();
    cfg.wasm_component_model(true);
    cfg.wasm_component_model_async(true);
    Engine::new(&cfg).map_err(|e| anyhow::anyhow!("{e}"))
}

impl Server {
    /// Compiles and pre-instantiates every component of `app`.
    pub fn new(engine: &Engine, app: App, models: Models) -> Result<Self> {
        let mut linker: Linker<RequestState> = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wt)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(wt)?;
        wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(wt)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker).map_err(wt)?;
        wasmtime_wasi_nn::wit::add_to_linker(&mut linker, |s: &mut RequestState| s.nn_view())
            .map_err(wt)?;
        let mut components = HashMap::new();
        for (id, spec) in &app.components {
            let started = std::time::Instant::now();
            let component = Component::from_file(engine, &spec.source)
                .map_err(wt)
                .with_context(|| format!("compiling component {id} from {}", spec.source.display()))?;
            let instance_pre = linker.instantiate_pre(&component).map_err(wt)?;
            let outbound = OutboundPolicy::new(&spec.allowed_outbound_hosts)
                .map_err(|e| anyhow::anyhow!("component {id}: {e}"))?;
            let served = match ProxyPre::new(instance_pre.clone()) {
                Ok(pre) => Served::P2 {
                    pre,
                    spec: spec.clone(),
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
                    Served::P3(ProxyHandler::new(state))
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
        })
    }

    /// Serves on `listener` until `shutdown` resolves; in-flight connections finish.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => { tracing::warn!("accept failed: {e}"); continue; }
                    };
                    let server = self.clone();
                    tasks.spawn(async move { server.connection(stream, peer).await });
                }
            }
        }
        tracing::info!("shutting down; waiting for {} connection(s)", tasks.len());
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(std::time::Duration::from_secs(10), drain).await.is_err() {
            tracing::warn!("connections still open after 10 s; closing them");
        }
        Ok(())
    }

    async fn connection(self: Arc<Self>, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let service = hyper::service::service_fn(move |req| {
            let server = self.clone();
            async move { server.handle(req).await }
        });
        if let Err(e) = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service)
            .await
        {
            tracing::debug!(%peer, "connection ended: {e}");
        }
    }

    async fn handle(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<HyperOutgoingBody>, std::convert::Infallible> {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        let started = std::time::Instant::now();
        let resp = match self.app.route(&path).and_then(|c| self.components.get(&c.id)) {
            Some(served) => match self.run(served, req).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(%path, "component failed: {e:#}");
                    crate::errors::response(500, "server_error", &format!("the request failed: {e}"))
                }
            },
            None => crate::errors::response(404, "not_found", &format!("no route for {path}")),
        };
        tracing::info!(%method, %path, status = resp.status().as_u16(),
            first_byte_ms = started.elapsed().as_secs_f64() * 1e3, "request");
        Ok(resp)
    }

    async fn run(
        &self,
        served: &Served,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<HyperOutgoingBody>> {
        let (pre, spec, outbound) = match served {
            Served::P2 { pre, spec, outbound } => (pre, spec, outbound),
            Served::P3(handler) => {
                let req = req.map(|b| b.map_err(wasmtime_wasi_http::Error::Hyper).boxed_unsync());
                return handler.handle((), req).await.map_err(wt);
            }
        };
        let state = RequestState::new(spec, &self.models, outbound.clone())?;
        let mut store = Store::new(pre.engine(), state);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (req, out) = {
            let mut http = store.data_mut().http_view();
            let req = http.new_incoming_request(Scheme::Http, req).map_err(wt)?;
            let out = http.new_response_outparam(sender).map_err(wt)?;
            (req, out)
        };
        let pre = pre.clone();
        // The guest keeps running after it sends the head (streaming bodies), so it
        // runs in its own task.
        let task = tokio::task::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        });
        match receiver.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => anyhow::bail!("guest error: {e:?}"),
            Err(_) => match task.await {
                Ok(Ok(())) => anyhow::bail!("the component sent no response"),
                Ok(Err(e)) => anyhow::bail!("the component trapped: {e:?}"),
                Err(e) => anyhow::bail!("the component task failed: {e}"),
            },
        }
    }
}

/// Converts a wasmtime error (not an `anyhow::Error` in wasmtime 48).
pub fn wt(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:?}")
}
