//! A response body that carries what its request holds until the body is done:
//! the guest's task (aborted, with its KV cache freed, if the client goes
//! first), the in-flight slot, the connection's busy mark; and that ends an
//! event stream cleanly (an SSE error event, then `[DONE]`) when the server's
//! shutdown deadline comes.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use wasmtime_wasi_http::Error;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// How a request's guest is stopped.
enum Stop {
    /// A p2 guest runs in a task of ours: abort it.
    Abort(tokio::task::AbortHandle),
    /// A p3 guest runs in wasmtime-wasi-http's worker: tell the worker, which
    /// expires the request and drops its store (see crate::p3).
    Signal(tokio::sync::oneshot::Sender<()>),
}

/// A request's guest: stopped if dropped before the request finished.
pub struct GuestTask {
    stop: Option<Stop>,
}

impl GuestTask {
    /// A p2 guest's task.
    pub fn new(abort: tokio::task::AbortHandle) -> Self {
        Self { stop: Some(Stop::Abort(abort)) }
    }

    /// A p3 guest, told by `gone` (see [`crate::p3::ClientGone`]).
    pub fn signal(gone: tokio::sync::oneshot::Sender<()>) -> Self {
        Self { stop: Some(Stop::Signal(gone)) }
    }

    /// The request was answered in full: let the guest end on its own.
    pub fn finished(&mut self) {
        self.stop = None;
    }
}

impl Drop for GuestTask {
    fn drop(&mut self) {
        let stopped = match self.stop.take() {
            // Dropping the task drops its store: its wasi:nn sessions free
            // their KV caches at the engine's next step.
            Some(Stop::Abort(task)) if !task.is_finished() => {
                task.abort();
                true
            }
            Some(Stop::Signal(gone)) => gone.send(()).is_ok(),
            _ => false,
        };
        if stopped {
            crate::metrics::request_cancelled();
            tracing::info!("client went away; request cancelled");
        }
    }
}

/// What a request holds while its body streams.
#[derive(Default)]
pub struct Held {
    pub guest: Option<GuestTask>,
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
    pub busy: Option<crate::connections::BusyGuard>,
}

/// Resolves when the shutdown deadline has come.
pub type Deadline = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The body of a response, see the module doc.
pub struct GuardedBody {
    inner: HyperOutgoingBody,
    held: Held,
    /// Set for event streams: when it resolves, the stream is closed cleanly.
    deadline: Option<Deadline>,
    closing: Option<VecDeque<Bytes>>,
}

/// The events that end a stream cut by shutdown.
fn farewell() -> VecDeque<Bytes> {
    let error = serde_json::json!({"error": {
        "message": "the server is shutting down; the stream was ended before it finished",
        "type": "server_error", "param": null, "code": "shutting_down"}});
    VecDeque::from([Bytes::from(format!("data: {error}\n\n")), Bytes::from_static(b"data: [DONE]\n\n")])
}

impl GuardedBody {
    /// Wraps `inner`; `deadline` only for event streams.
    pub fn wrap(inner: HyperOutgoingBody, held: Held, deadline: Option<Deadline>) -> HyperOutgoingBody {
        Self { inner, held, deadline, closing: None }.boxed_unsync()
    }

    fn done(&mut self) {
        if let Some(g) = self.held.guest.as_mut() {
            g.finished();
        }
        self.held = Held::default();
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if this.closing.is_none() {
            if let Some(d) = this.deadline.as_mut() {
                if d.as_mut().poll(cx).is_ready() {
                    this.closing = Some(farewell());
                }
            }
        }
        if let Some(rest) = this.closing.as_mut() {
            return match rest.pop_front() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                None => {
                    // Cut, not finished: the guest is stopped.
                    this.held = Held::default();
                    Poll::Ready(None)
                }
            };
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.done();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.closing.as_ref().is_some_and(|c| c.is_empty()) || (self.closing.is_none() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        if self.deadline.is_some() {
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}
