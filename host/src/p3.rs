//! Serving `wasi:http/handler@0.3` (WASIp3) components, such as those spin-sdk 7
//! builds, through wasmtime-wasi-http's `ProxyHandler`: each request gets a fresh
//! store and instance (one request per worker, as for p2), and the store's event
//! loop keeps running until the guest has finished streaming its body.

use crate::manifest::Component as AppComponent;
use crate::nn::Models;
use crate::outbound::OutboundPolicy;
use crate::state::RequestState;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use wasmtime::component::{GuestTaskId, InstancePre};
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

/// How to make a store and instance for one p3 component.
pub struct P3State {
    pre: ServicePre<RequestState>,
    spec: AppComponent,
    models: Models,
    outbound: OutboundPolicy,
}

impl P3State {
    /// Wraps a pre-instance that exports `wasi:http/handler@0.3`.
    pub fn new(
        pre: InstancePre<RequestState>,
        spec: AppComponent,
        models: Models,
        outbound: OutboundPolicy,
    ) -> wasmtime::Result<Self> {
        Ok(Self {
            pre: ServicePre::new(pre)?,
            spec,
            models,
            outbound,
        })
    }
}

fn view(s: &mut RequestState) -> WasiHttpCtxView<'_> {
    s.http()
}

/// A worker handles exactly one request, then its instance is dropped.
pub struct OneShot;

impl WorkerExpiration for OneShot {
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>, state: WorkerStatus, _start: Instant) -> Poll<()> {
        match state {
            WorkerStatus::Idle => Poll::Ready(()),
            _ => Poll::Pending,
        }
    }
}

/// Accepts the first request only.
pub struct OneRequest;

impl WorkerState for OneRequest {
    type StoreData = RequestState;
    type RequestData = ();

    fn should_accept_request(&self, _concurrent: usize, total: usize) -> ShouldAccept {
        if total == 0 {
            ShouldAccept::Yes
        } else {
            ShouldAccept::Never
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, RequestState>,
        _data: (),
        _task: GuestTaskId,
    ) -> Pin<Box<dyn std::future::Future<Output = ()> + 'static + Send + Sync>> {
        // No deadline of our own: generation may stream for a long time.
        Box::pin(std::future::pending())
    }

    fn drop(&self, _store: Store<RequestState>, result: Result<(), wasmtime::Error>) {
        if let Err(e) = result {
            tracing::error!("p3 guest failed: {e:?}");
        }
    }
}

impl HandlerState for P3State {
    type StoreData = RequestState;
    type WorkerExpiration = OneShot;
    type WorkerState = OneRequest;

    async fn instantiate(&self) -> wasmtime::Result<Instance<RequestState, OneShot, OneRequest>> {
        let hit = crate::limits::LimitHit::default();
        let state = RequestState::new(&self.spec, &self.models, self.outbound.clone(), hit.clone())
            .map_err(|e| wasmtime::format_err!("{e:#}"))?;
        let mut store = Store::new(self.pre.engine(), state);
        crate::limits::apply(&mut store, self.spec.limits, hit);
        let proxy = ProxyPre::P3(self.pre.clone()).instantiate_async(&mut store).await?;
        Ok(Instance {
            store,
            proxy,
            view,
            expiration: OneShot,
            state: OneRequest,
        })
    }
}
