//! The open connections: a cap on how many, idle ones closed after a while or
//! when room is needed, and accept errors (such as running out of file
//! descriptors) backed off and logged at most once a second.
//!
//! A connection is *busy* while one of its requests is being answered (from the
//! head read to the end of the response body) and *idle* otherwise: before its
//! first request is complete, and between keep-alive requests. Idle connections
//! are closed after [`ConnLimits::idle_timeout`], whatever bytes trickle in, so a
//! client that sends a byte a second cannot hold one. When the cap is reached,
//! or accept fails for want of descriptors, the longest-idle connection is
//! closed to make room; if none is idle, the new connection gets a 503.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Limits on connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long a connection may be idle (no request being answered).
    pub idle_timeout: Duration,
    /// How long a client may take to send a request's head.
    pub header_timeout: Duration,
}

impl ConnLimits {
    /// The default cap: what the file-descriptor limit leaves after a reserve
    /// for the model files, the engine and the runtime, at most 1024.
    pub fn default_max_connections() -> usize {
        match open_files_limit() {
            Some(n) if n >= 128 => (n - 64).min(1024) as usize,
            Some(n) => (n / 2).max(1) as usize,
            None => 1024,
        }
    }
}

/// Descriptors kept free for other uses when the limit is found by running out.
pub const FD_MARGIN: usize = 16;

/// The soft limit on open files, from `/proc/self/limits`.
fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

struct Entry {
    busy: usize,
    idle_since: Instant,
    close: Arc<Notify>,
}

/// All open connections.
pub struct Connections {
    limits: ConnLimits,
    /// The cap in force: `limits.max_connections`, lowered if the descriptor
    /// limit turns out to be reached first.
    cap: AtomicUsize,
    open: Mutex<HashMap<u64, Entry>>,
    next: AtomicU64,
}

/// What to do with a newly accepted connection.
pub enum Admission {
    /// Serve it; closing `close` (notify) asks it to go.
    Serve(ConnHandle),
    /// Over the cap with nothing idle to close: answer 503 and close.
    Refuse,
}

/// A connection's membership; it leaves the set when dropped.
pub struct ConnHandle {
    conns: Arc<Connections>,
    id: u64,
    /// Notified when the connection should close at once.
    pub close: Arc<Notify>,
}

impl Drop for ConnHandle {
    fn drop(&mut self) {
        self.conns.lock().remove(&self.id);
    }
}

/// Marks its connection busy while alive (one request being answered).
pub struct BusyGuard {
    conns: Arc<Connections>,
    id: u64,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        if let Some(e) = self.conns.lock().get_mut(&self.id) {
            e.busy = e.busy.saturating_sub(1);
            if e.busy == 0 {
                e.idle_since = Instant::now();
            }
        }
    }
}

impl Connections {
    pub fn new(limits: ConnLimits) -> Arc<Self> {
        Arc::new(Self {
            cap: AtomicUsize::new(limits.max_connections),
            limits,
            open: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        })
    }

    pub fn limits(&self) -> ConnLimits {
        self.limits
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Admits a new connection, closing the longest-idle one if at the cap.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let mut open = self.lock();
        while open.len() >= self.cap.load(Ordering::Relaxed) {
            if !Self::evict_idle(&mut open) {
                return Admission::Refuse;
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        open.insert(id, Entry { busy: 0, idle_since: Instant::now(), close: close.clone() });
        Admission::Serve(ConnHandle { conns: self.clone(), id, close })
    }

    /// Closes the longest-idle connection (to free a descriptor); false if none is idle.
    pub fn close_longest_idle(&self) -> bool {
        Self::evict_idle(&mut self.lock())
    }

    /// The descriptors ran out with the connections now open: lowers the cap
    /// to leave [`FD_MARGIN`] of them for everything else (instantiating a
    /// guest takes a memfd, a model file an fd), and closes idle connections
    /// down to it. Returns whether one was closed.
    pub fn out_of_descriptors(&self) -> bool {
        let mut open = self.lock();
        let cap = open.len().saturating_sub(FD_MARGIN).max(1);
        if cap < self.cap.load(Ordering::Relaxed) {
            self.cap.store(cap, Ordering::Relaxed);
            tracing::warn!("open files ran out with {} connections open; at most {cap} from now on", open.len());
        }
        let mut freed = false;
        while open.len() > cap && Self::evict_idle(&mut open) {
            freed = true;
        }
        freed
    }

    fn evict_idle(open: &mut HashMap<u64, Entry>) -> bool {
        let oldest = open
            .iter()
            .filter(|(_, e)| e.busy == 0)
            .min_by_key(|(_, e)| e.idle_since)
            .map(|(id, _)| *id);
        match oldest.and_then(|id| open.remove(&id)) {
            Some(e) => {
                e.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// Marks connection `id` busy until the guard drops.
    pub fn busy(self: &Arc<Self>, id: u64) -> BusyGuard {
        if let Some(e) = self.lock().get_mut(&id) {
            e.busy += 1;
        }
        BusyGuard { conns: self.clone(), id }
    }

    /// How long connection `id` has been idle (`None`: busy, or gone).
    fn idle_for(&self, id: u64) -> Option<Duration> {
        self.lock().get(&id).and_then(|e| (e.busy == 0).then(|| e.idle_since.elapsed()))
    }

    /// Asks every connection to close at once (the end of shutdown).
    pub fn close_all(&self) {
        for e in self.lock().values() {
            e.close.notify_one();
        }
    }
}

impl ConnHandle {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Resolves once the connection has been idle for the idle timeout.
    pub async fn idle_expired(&self) {
        let timeout = self.conns.limits.idle_timeout;
        loop {
            let wait = match self.conns.idle_for(self.id) {
                Some(idle) if idle >= timeout => return,
                Some(idle) => timeout - idle,
                None => timeout,
            };
            tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
        }
    }
}

/// Backs off after accept errors and logs them at most once a second.
pub struct AcceptErrors {
    delay: Duration,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl Default for AcceptErrors {
    fn default() -> Self {
        Self { delay: Duration::ZERO, last_log: None, suppressed: 0 }
    }
}

impl AcceptErrors {
    /// Records an error; returns how long to wait before accepting again.
    /// `freed`: an idle connection was closed to make room, so the next accept
    /// may succeed as soon as it is gone (no longer back-off).
    pub fn failed(&mut self, e: &std::io::Error, freed: bool) -> Duration {
        self.delay = if freed {
            Duration::from_millis(2)
        } else {
            (self.delay * 2).clamp(Duration::from_millis(5), Duration::from_millis(500))
        };
        let due = self.last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if due {
            tracing::warn!(
                suppressed = self.suppressed,
                "accept failed: {e}; backing off {} ms",
                self.delay.as_millis()
            );
            self.last_log = Some(Instant::now());
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        self.delay
    }

    /// Records a success.
    pub fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conns(max: usize) -> Arc<Connections> {
        Connections::new(ConnLimits {
            max_connections: max,
            idle_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
        })
    }

    #[test]
    fn at_the_cap_the_longest_idle_goes_and_busy_ones_stay() {
        let c = conns(2);
        let Admission::Serve(a) = c.admit() else { panic!("first refused") };
        let Admission::Serve(b) = c.admit() else { panic!("second refused") };
        let _busy_b = c.busy(b.id());
        // a is idle: it makes room.
        let Admission::Serve(d) = c.admit() else { panic!("third refused") };
        assert_eq!(c.len(), 2);
        drop(a);
        let _busy_d = c.busy(d.id());
        // b and d are busy: nothing can go.
        assert!(matches!(c.admit(), Admission::Refuse));
        drop(_busy_d);
        assert!(matches!(c.admit(), Admission::Serve(_)));
    }

    #[test]
    fn running_out_of_descriptors_lowers_the_cap() {
        let c = conns(1000);
        let handles: Vec<ConnHandle> = (0..40)
            .map(|_| match c.admit() {
                Admission::Serve(h) => h,
                Admission::Refuse => panic!("refused under the cap"),
            })
            .collect();
        assert!(c.out_of_descriptors());
        assert_eq!(c.len(), 40 - FD_MARGIN);
        // New ones now replace idle ones instead of adding to them.
        let Admission::Serve(newest) = c.admit() else { panic!("refused with idle connections open") };
        assert_eq!(c.len(), 40 - FD_MARGIN);
        drop((handles, newest));
    }

    #[test]
    fn accept_errors_back_off_and_reset() {
        let mut errs = AcceptErrors::default();
        let e = std::io::Error::other("too many open files");
        let first = errs.failed(&e, false);
        let second = errs.failed(&e, false);
        assert!(second > first);
        for _ in 0..20 {
            errs.failed(&e, false);
        }
        assert_eq!(errs.failed(&e, false), Duration::from_millis(500));
        assert_eq!(errs.suppressed, 22);
        assert_eq!(errs.failed(&e, true), Duration::from_millis(2));
        errs.succeeded();
        assert_eq!(errs.failed(&e, false), Duration::from_millis(5));
    }
}
