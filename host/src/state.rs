//! Per-request store state: WASI (environment and mounts from the manifest),
//! `wasi:http`, and a view of the shared models for `wasi:nn`.

use crate::kv::{KvAccess, KvView};
use crate::limits::{HasLimiter, LimitHit, Limiter};
use crate::manifest::Component as AppComponent;
use crate::nn::Models;
use crate::outbound::OutboundPolicy;
use anyhow::Result;
use reka_protocol::spin::AI_MODELS_ENV;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
use wasmtime_wasi_nn::wit::{WasiNnCtx, WasiNnView};

/// The data of one request's store.
pub struct RequestState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    nn: WasiNnCtx,
    outbound: OutboundPolicy,
    limiter: Limiter,
    kv: KvAccess,
}

/// Environment variable that lists the served model names (default first).
pub const MODELS_ENV: &str = "REKA_MODELS";
/// Environment variable that lists the served embedding models (default first).
pub const EMBEDDING_MODELS_ENV: &str = "REKA_EMBEDDING_MODELS";
/// Environment variable that lists the served models with their input
/// modalities (default first; see [`Models::listing`]).
pub const MODEL_INPUTS_ENV: &str = "REKA_MODEL_INPUTS";

impl RequestState {
    /// State for one request to `component`; `hit` records which of the
    /// component's limits, if any, stopped it.
    pub fn new(component: &AppComponent, models: &Models, outbound: OutboundPolicy, hit: LimitHit) -> Result<Self> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stderr();
        wasi.env(MODELS_ENV, models.names().join(","));
        wasi.env(MODEL_INPUTS_ENV, models.listing());
        wasi.env(EMBEDDING_MODELS_ENV, models.embedding_names().join(","));
        // The Spin LLM provider reads the component's `ai_models` here; the
        // manifest's own `environment` cannot change it.
        wasi.env(AI_MODELS_ENV, component.ai_models.join(","));
        for (k, v) in component.env.iter().filter(|(k, _)| k != AI_MODELS_ENV) {
            wasi.env(k, v);
        }
        for m in &component.mounts {
            wasi.preopened_dir(&m.host, &m.guest, FsPerms::ReadOnly)
                .map_err(crate::server::wt)?;
        }
        Ok(Self {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            nn: WasiNnCtx::new([], models.registry()),
            outbound,
            limiter: Limiter::new(component.limits, hit),
            kv: component.kv.clone(),
        })
    }

    /// The wasi:nn view of this store.
    pub fn nn_view(&mut self) -> WasiNnView<'_> {
        WasiNnView::new(&mut self.table, &mut self.nn)
    }

    /// The key-value view of this store (crate::kv).
    pub fn kv_view(&mut self) -> KvView<'_> {
        KvView { table: &mut self.table, access: &mut self.kv }
    }

    /// The wasi:http view of this store.
    pub fn http_view(&mut self) -> WasiHttpCtxView<'_> {
        self.http()
    }
}

impl RequestState {
    /// Which of its limits, if any, stopped this request.
    pub fn limit_hit(&self) -> LimitHit {
        self.limiter.hit()
    }
}

impl HasLimiter for RequestState {
    fn limiter(&mut self) -> &mut Limiter {
        &mut self.limiter
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}
