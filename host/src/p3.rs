//! Serving `wasi:http/handler@0.3` (WASIp3) components, such as those spin-sdk 7
//! builds, through wasmtime-wasi-http's `ProxyHandler`: each request gets a fresh
//! store and instance (one request per worker, as for p2), and the store's event
//! loop keeps running until the guest has finished streaming its body.

use crate::manifest::Component as AppComponent;
use crate::nn::Models;
use crate::outbound::OutboundPolicy;
use crate::state::RequestState;
use crate::limits::LimitHit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
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

/// Set when the request's client has gone; wakes the worker's expiration.
#[derive(Default)]
pub struct Gone {
    flag: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Gone {
    fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            w.wake();
        }
    }
}

/// A worker handles exactly one request, then its instance is dropped; it is
/// dropped at once, guest and all, if the request's client goes. (This is
/// polled outside the store's event loop, so it works while the guest spins or
/// sits in a host call, which the loop's own expiration future does not.)
pub struct OneShot(Arc<Gone>);

impl WorkerExpiration for OneShot {
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>, state: WorkerStatus, _start: Instant) -> Poll<()> {
        if matches!(state, WorkerStatus::Idle) || self.0.flag.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        *self.0.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        // Set between the check and the waker's registration: look again.
        if self.0.flag.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// Accepts the first request only.
pub struct OneRequest(Arc<Gone>);

/// What the server hands a p3 request.
pub struct P3Request {
    /// Fires when the request's client has gone before its answer was complete
    /// (see [`crate::guarded_body::GuestTask`]); the request then expires and
    /// the worker, and with it the guest, is dropped.
    pub gone: tokio::sync::oneshot::Receiver<()>,
    /// Filled with the store's [`LimitHit`] when the request starts, so that the
    /// server can name the limit that stopped it.
    pub hit: Arc<OnceLock<LimitHit>>,
}

impl WorkerState for OneRequest {
    type StoreData = RequestState;
    type RequestData = P3Request;

    fn should_accept_request(&self, _concurrent: usize, total: usize) -> ShouldAccept {
        if total == 0 {
            ShouldAccept::Yes
        } else {
            ShouldAccept::Never
        }
    }

    fn on_request_start(
        &self,
        store: StoreContextMut<'_, RequestState>,
        request: P3Request,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn std::future::Future<Output = ()> + 'static + Send + Sync>> {
        let _ = request.hit.set(store.data().limit_hit());
        // No deadline of our own (generation may stream for a long time): the
        // worker ends when the client has gone (a sender dropped without a
        // word means the request finished).
        let gone = self.0.clone();
        tokio::spawn(async move {
            if request.gone.await.is_ok() {
                gone.set();
            }
        });
        Box::pin(std::future::pending())
    }

    fn drop(&self, _store: Store<RequestState>, result: Result<(), wasmtime::Error>) {
        match result {
            Err(_) if self.0.flag.load(Ordering::SeqCst) => tracing::debug!("p3 guest dropped: its client went away"),
            Err(e) => tracing::error!("p3 guest failed: {e:?}"),
            Ok(()) => {}
        }
    }
}

impl HandlerState for P3State {
    type StoreData = RequestState;
    type WorkerExpiration = OneShot;
    type WorkerState = OneRequest;

    async fn instantiate(&self) -> wasmtime::Result<Instance<RequestState, OneShot, OneRequest>> {
        let gone = Arc::new(Gone::default());
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
            expiration: OneShot(gone.clone()),
            state: OneRequest(gone),
        })
    }
}
