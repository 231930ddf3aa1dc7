//! Continuous batching: one engine thread per model runs the steps of every open
//! session together.
//!
//! A session's `compute` sends its new token ids here and waits. Each engine
//! step takes every waiting decode token plus chunks of waiting prompts (up to
//! [`Limits::step_tokens`] rows in all) and runs them as one
//! [`Llama::forward_batch`](crate::model::Llama::forward_batch), so a long prompt
//! is prefilled over several steps while running streams keep decoding. A
//! session that ends frees its KV cache at once.
//!
//! Admission control keeps the KV caches inside [`Limits::kv_budget_bytes`]: a
//! new session waits until its prompt fits (keeping an eighth of the budget for
//! running sessions to grow into), gets `busy` when too many are already
//! waiting, and `overloaded` when it waited too long or the budget runs out under
//! a running session; a prompt larger than the whole budget gets `too large` at
//! once (no retry can succeed). The memory is never exceeded.
//!
//! Finished sessions' caches go to the model's prefix cache ([`super::prefix`]):
//! a new prompt that starts like one of them takes or copies the common
//! positions and prefills only the rest. What the prefix cache holds counts in
//! the budget but gives way: entries are evicted, least recently used first,
//! whenever live sessions need the memory, before any session waits or is shed.
//!
//! The engine thread keeps its model's [`EngineMetrics`] (`GET /metrics`): a
//! session's first step is its prompt, and every step answered with logits is
//! one generated token (the guest samples one token from each).

use super::engines::{CpuEngine, Engine, EngineStep};
use super::prefix::{self, Key, PrefixCache};
use crate::metrics::{self, EngineMetrics, Rejection};
use crate::model::LoadedModel;
use reka_protocol::logprobs::{score, Scored};
use std::collections::{HashMap, HashSet, VecDeque};

fn gone() -> StepError {
    StepError::Engine("the engine thread has stopped".into())
}

fn shed() -> StepError {
    StepError::Overloaded("the KV memory budget ran out and this stream, the newest, gave way; the server is overloaded".into())
}
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// The engine's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Memory for all sessions' keys and values.
    pub kv_budget_bytes: usize,
    /// New sessions that may wait for memory at once; more get `busy`.
    pub max_waiting: usize,
    /// How long a new session may wait for memory before it gets `overloaded`.
    pub admission_timeout: Duration,
    /// Rows (tokens) per engine step: all decodes plus prompt chunks.
    pub step_tokens: usize,
    /// Most KV memory the prefix cache may hold (0: off); it never holds what
    /// live sessions need. `usize::MAX`: all of the budget they leave.
    pub prefix_cache_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            kv_budget_bytes: 4 << 30,
            max_waiting: 64,
            admission_timeout: Duration::from_secs(30),
            step_tokens: 128,
            prefix_cache_bytes: usize::MAX,
        }
    }
}

/// Why a step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    Overloaded(String),
    Busy(String),
    /// The prompt is larger than the whole KV budget: no retry can succeed.
    TooLarge(String),
    Engine(String),
}

/// What a step answers: the last position's logits, and with prompt
/// log-probs asked for, each appended id after the first scored.
#[derive(Debug, Clone, Default)]
pub struct StepOut {
    pub logits: Vec<f32>,
    pub scored: Vec<Scored>,
}

type Reply = mpsc::Sender<Result<StepOut, StepError>>;

/// One session's step, as [`Scheduler::step_many`] takes it.
pub struct StepRequest {
    pub seq: u64,
    pub ids: Vec<u32>,
    pub embeds: Embeds,
    /// Score every appended id after the first, with this many best ids of
    /// each position.
    pub prompt_top: Option<usize>,
}

/// The least and the most a step waits for the sessions of the step before to
/// send their next token. A guest's turn between steps (sampling,
/// detokenising, writing an SSE event) is short, but sixteen of them share the
/// CPUs with each other, so the wait scales with the step ([`gather_window`]).
const GATHER: Duration = Duration::from_millis(2);
const GATHER_MAX: Duration = Duration::from_millis(20);

/// How long to wait for stragglers after a step that took `last_step`: a
/// quarter of it. A session that misses the step runs in one of its own (the
/// weights read once more for a few rows), and the streams stay split into
/// two cohorts that alternate; waiting a quarter step costs less than that.
fn gather_window(last_step: Duration) -> Duration {
    (last_step / 4).clamp(GATHER, GATHER_MAX)
}

/// Rows of a step's ids whose input embedding is given (media):
/// `(row, [hidden] values)`, rows ascending.
pub type Embeds = Vec<(usize, Vec<f32>)>;

enum Msg {
    /// `at`: when the session sent it; `keys`: its ids' prefix-cache keys
    /// (none with the prefix cache off).
    Step { req: StepRequest, keys: Vec<Key>, reply: Reply, at: Instant },
    /// Copies `from`'s cache into the new sessions `into`.
    Fork { from: u64, into: Vec<u64>, reply: mpsc::Sender<Result<(), StepError>> },
    Free(u64),
}

/// The handle sessions use; the engine thread ends when the last handle goes.
pub struct Scheduler {
    tx: mpsc::Sender<Msg>,
    next: AtomicU64,
    /// Whether steps carry prefix-cache keys (the prefix cache is on).
    keyed: bool,
}

impl Scheduler {
    /// Starts the engine thread for `model`: on its GPU decoder when it has
    /// one (GPU builds), else on the CPU.
    pub fn start(model: Arc<LoadedModel>, limits: Limits) -> std::io::Result<Arc<Self>> {
        let name = model.info.name.clone();
        #[cfg(feature = "cuda")]
        if let Some(g) = &model.gpu {
            return Self::start_on(&name, super::engines::GpuEngine(g.clone()), limits);
        }
        Self::start_on(&name, CpuEngine(model.decoder.clone()), limits)
    }

    /// Starts the engine thread for `engine`, its metrics labelled `model`.
    pub fn start_on<E: Engine>(model: &str, engine: E, limits: Limits) -> std::io::Result<Arc<Self>> {
        let (tx, rx) = mpsc::channel();
        let per_position = engine.bytes_per_position().max(1);
        tracing::debug!(device = engine.device(), "engine thread starting");
        let capacity = limits.kv_budget_bytes / per_position;
        let metrics = metrics::engine(model);
        metrics.kv_budget.store((capacity * per_position) as u64, Ordering::Relaxed);
        let cached = if engine.prefix_cache() { capacity.min(limits.prefix_cache_bytes / per_position) } else { 0 };
        if limits.prefix_cache_bytes > 0 && !engine.prefix_cache() {
            tracing::info!(model, device = engine.device(), "prefix cache off: this decoder does not support it");
        }
        metrics.prefix_budget.store((cached * per_position) as u64, Ordering::Relaxed);
        let worker = Worker {
            capacity,
            per_position,
            metrics,
            last_answer: HashMap::new(),
            last_ran: Vec::new(),
            last_step: Duration::ZERO,
            engine,
            limits,
            rx,
            caches: HashMap::new(),
            broken: HashMap::new(),
            jobs: VecDeque::new(),
            used: 0,
            prefix: PrefixCache::new(cached),
            history: HashMap::new(),
        };
        std::thread::Builder::new()
            .name("reka-engine".into())
            .spawn(move || worker.run())?;
        Ok(Arc::new(Self { tx, next: AtomicU64::new(1), keyed: cached > 0 }))
    }

    /// A new session id.
    pub fn open(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Appends `ids` to session `seq` and returns the logits of the last one;
    /// blocks until the engine has run it.
    pub fn step(&self, seq: u64, ids: Vec<u32>) -> Result<Vec<f32>, StepError> {
        self.step_with(seq, ids, Vec::new())
    }

    /// [`Scheduler::step`] with the embeddings of some rows given (media).
    pub fn step_with(&self, seq: u64, ids: Vec<u32>, embeds: Embeds) -> Result<Vec<f32>, StepError> {
        let req = StepRequest { seq, ids, embeds, prompt_top: None };
        let out = self.step_many(vec![req]).pop().unwrap_or_else(|| Err(gone()))?;
        Ok(out.logits)
    }

    /// Runs several sessions' steps (a request's parallel streams): all are
    /// queued at once, so the engine batches them; blocks until all are run.
    pub fn step_many(&self, reqs: Vec<StepRequest>) -> Vec<Result<StepOut, StepError>> {
        let now = Instant::now();
        let answers: Vec<_> = reqs
            .into_iter()
            .map(|req| {
                let (reply, answer) = mpsc::channel();
                // Hashing media embeddings is done here, on the session's thread.
                let keys = if self.keyed { prefix::keys(&req.ids, &req.embeds) } else { Vec::new() };
                self.tx.send(Msg::Step { req, keys, reply, at: now }).map(|_| answer).map_err(|_| gone())
            })
            .collect();
        answers.into_iter().map(|a| a.and_then(|a| a.recv().map_err(|_| gone())?)).collect()
    }

    /// Copies session `from`'s KV cache into the new sessions `into` (one
    /// prefill, several streams); fails `overloaded` when the memory budget
    /// cannot hold the copies.
    pub fn fork(&self, from: u64, into: Vec<u64>) -> Result<(), StepError> {
        let (reply, answer) = mpsc::channel();
        self.tx.send(Msg::Fork { from, into, reply }).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }

    /// Ends session `seq`; its KV memory is freed at once.
    pub fn free(&self, seq: u64) {
        let _ = self.tx.send(Msg::Free(seq));
    }
}

struct Job {
    seq: u64,
    ids: Vec<u32>,
    /// The ids' prefix-cache keys (empty with the cache off).
    keys: Vec<Key>,
    embeds: Embeds,
    /// Prompt log-probs: the best ids per position, and the scores so far.
    prompt_top: Option<usize>,
    scored: Vec<Scored>,
    /// Ids already run (prompt chunks).
    done: usize,
    reply: Reply,
    since: Instant,
    /// The session's first step (its prompt).
    first: bool,
}

struct Worker<E: Engine> {
    engine: E,
    limits: Limits,
    rx: mpsc::Receiver<Msg>,
    caches: HashMap<u64, E::Cache>,
    /// Sessions that cannot go on (a failed step left their cache half-written,
    /// or they were shed for memory), with what their next step gets.
    broken: HashMap<u64, StepError>,
    jobs: VecDeque<Job>,
    /// Positions held by all caches, and the most they may hold.
    used: usize,
    capacity: usize,
    /// KV bytes per position.
    per_position: usize,
    metrics: Arc<EngineMetrics>,
    /// When each session's last step was answered (inter-token latency).
    last_answer: HashMap<u64, Instant>,
    /// The sessions of the last step, and how long it took (for [`Self::gather`]).
    last_ran: Vec<u64>,
    last_step: Duration,
    /// Finished sessions' caches, for prompts that start the same way.
    prefix: PrefixCache<E::Cache>,
    /// The keys of the positions each live session's cache holds (with the
    /// prefix cache on): what its cache is kept under when it ends.
    history: HashMap<u64, Vec<Key>>,
}

impl<E: Engine> Worker<E> {
    fn run(mut self) {
        loop {
            self.publish();
            if self.jobs.is_empty() {
                match self.rx.recv() {
                    Ok(m) => self.take(m),
                    Err(_) => return,
                }
            }
            while let Ok(m) = self.rx.try_recv() {
                self.take(m);
            }
            self.gather();
            let plan = self.plan();
            if plan.is_empty() {
                // Everything waits for memory: wake up for news or to time out.
                match self.rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(m) => self.take(m),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
                continue;
            }
            self.run_step(plan);
        }
    }

    /// Waits a moment for the sessions answered by the last step that have not
    /// sent their next one yet (their guest is still sampling or writing the
    /// token out), so that they join this step instead of waiting a whole step
    /// for the next. A session that was not in the last step (its client is
    /// slow, or it missed the window once) is not waited for: it joins
    /// whichever step follows its request.
    fn gather(&mut self) {
        let deadline = Instant::now() + gather_window(self.last_step);
        loop {
            let queued: HashSet<u64> = self.jobs.iter().map(|j| j.seq).collect();
            if !self.last_ran.iter().any(|s| self.caches.contains_key(s) && !queued.contains(s)) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(m) => self.take(m),
                Err(_) => return,
            }
        }
    }

    /// The gauges: sessions running and waiting, KV memory held.
    fn publish(&self) {
        let waiting = self.jobs.iter().filter(|j| !self.caches.contains_key(&j.seq)).count();
        let m = &self.metrics;
        m.running.store(self.caches.len() as u64, Ordering::Relaxed);
        m.waiting.store(waiting as u64, Ordering::Relaxed);
        m.kv_bytes.store((self.used * self.per_position) as u64, Ordering::Relaxed);
        m.prefix_bytes.store((self.prefix.positions() * self.per_position) as u64, Ordering::Relaxed);
    }

    /// New sessions queued and the positions their prompts need.
    fn queued(&self) -> (usize, usize) {
        self.jobs
            .iter()
            .filter(|j| !self.caches.contains_key(&j.seq))
            .fold((0, 0), |(n, p), j| (n + 1, p + j.ids.len()))
    }

    /// The positions new sessions may be admitted up to: all of them when nothing
    /// runs, else seven eighths, leaving room for running sessions to grow.
    fn room(&self) -> usize {
        if self.caches.is_empty() {
            self.capacity
        } else {
            self.capacity * 7 / 8
        }
    }

    fn take(&mut self, m: Msg) {
        match m {
            Msg::Free(seq) => {
                let keys = self.history.remove(&seq);
                if let Some(mut c) = self.caches.remove(&seq) {
                    self.used -= E::cache_len(&c);
                    // Kept only when every position's key is known.
                    if let Some(keys) = keys.filter(|k| k.len() == E::cache_len(&c)) {
                        self.engine.trim(&mut c);
                        let n = self.prefix.insert(keys, c);
                        self.metrics.prefix_evictions.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
                self.jobs.retain(|j| j.seq != seq);
                self.broken.remove(&seq);
                self.last_answer.remove(&seq);
            }
            Msg::Fork { from, into, reply } => {
                let _ = reply.send(self.fork(from, into));
            }
            Msg::Step { req: StepRequest { seq, ids, embeds, prompt_top }, keys, reply, at } => {
                let new = !self.caches.contains_key(&seq);
                if let Some(e) = self.broken.get(&seq) {
                    let _ = reply.send(Err(e.clone()));
                } else if new && ids.len() > self.capacity {
                    self.metrics.reject(Rejection::TooLarge);
                    let _ = reply.send(Err(StepError::TooLarge(format!(
                        "the prompt needs {} positions of KV memory but the server's whole KV budget holds {}; \
                         shorten the prompt (no retry can succeed)",
                        ids.len(),
                        self.capacity
                    ))));
                } else if new && {
                    let (n, need) = self.queued();
                    n >= self.limits.max_waiting && self.used + need + ids.len() > self.room()
                } {
                    self.metrics.reject(Rejection::Busy);
                    let _ = reply.send(Err(StepError::Busy(format!(
                        "{} requests are already waiting for the engine; try again shortly",
                        self.limits.max_waiting
                    ))));
                } else {
                    self.jobs.push_back(Job { seq, ids, keys, embeds, prompt_top, scored: Vec::new(), done: 0, reply, since: at, first: new });
                }
            }
        }
    }

    /// Copies `from`'s cache into each of `into`, within the memory budget.
    fn fork(&mut self, from: u64, into: Vec<u64>) -> Result<(), StepError> {
        if let Some(e) = self.broken.get(&from) {
            return Err(e.clone());
        }
        let len = self.caches.get(&from).map(E::cache_len).ok_or_else(|| StepError::Engine(format!("session {from} has no cache to fork")))?;
        self.reclaim(self.used + len * into.len(), None);
        let src = self.caches.get(&from).ok_or_else(|| StepError::Engine(format!("session {from} has no cache to fork")))?;
        if self.used + len * into.len() > self.capacity {
            self.metrics.reject(Rejection::Shed);
            return Err(StepError::Overloaded(format!(
                "{} copies of a {len}-position prompt do not fit the KV memory budget now; the server is overloaded",
                into.len()
            )));
        }
        let copies = into
            .iter()
            .map(|_| self.engine.fork_cache(src))
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(|e| StepError::Engine(format!("copying a KV cache: {e}")))?;
        let keys = self.history.get(&from).cloned();
        for (seq, c) in into.into_iter().zip(copies) {
            self.used += len;
            self.caches.insert(seq, c);
            if let Some(k) = &keys {
                self.history.insert(seq, k.clone());
            }
        }
        Ok(())
    }

    /// Picks this step's rows: `(job index, ids to run)`. Running sessions come
    /// first (decodes, then prompt chunks), then new sessions in arrival order
    /// while memory allows.
    fn plan(&mut self) -> Vec<(usize, usize)> {
        let mut rows = self.limits.step_tokens.max(1);
        let mut plan = Vec::new();
        let mut reserved = 0;
        let mut failed = Vec::new();
        let mut order: Vec<usize> = (0..self.jobs.len()).collect();
        // Running sessions before new ones, decodes before prompt chunks, older
        // sessions first (so that when memory runs out, the newest give way).
        order.sort_by_key(|&i| {
            let j = &self.jobs[i];
            (!self.caches.contains_key(&j.seq), j.ids.len() - j.done > 1, j.seq)
        });
        let mut admitting = true;
        for i in order {
            if rows == 0 {
                break;
            }
            let (seq, mut left) = (self.jobs[i].seq, self.jobs[i].ids.len() - self.jobs[i].done);
            if self.broken.contains_key(&seq) {
                continue; // shed earlier in this plan; its answer is queued
            }
            if !self.caches.contains_key(&seq) {
                let fits = self.used + reserved + left <= self.room();
                if !admitting || !fits {
                    admitting = false; // first come, first served
                    if self.jobs[i].since.elapsed() > self.limits.admission_timeout {
                        self.metrics.reject(Rejection::Timeout);
                        failed.push((i, StepError::Overloaded(format!(
                            "no KV memory came free within {:?}; the server is overloaded",
                            self.limits.admission_timeout
                        ))));
                    }
                    continue;
                }
                match self.admit(i, left, reserved) {
                    Ok(reused) => left -= reused,
                    Err(e) => {
                        failed.push((i, StepError::Engine(format!("allocating the KV cache: {e}"))));
                        continue;
                    }
                }
            } else if !self.make_room(seq, left.min(rows), reserved, &plan, &mut failed) {
                continue;
            }
            let n = left.min(rows);
            rows -= n;
            reserved += n;
            plan.push((i, n));
        }
        // Answer the failed jobs (highest index first so the others keep theirs).
        failed.sort_by_key(|f| std::cmp::Reverse(f.0));
        for (i, e) in failed {
            if let Some(j) = self.jobs.remove(i) {
                let _ = j.reply.send(Err(e));
            }
            for p in plan.iter_mut() {
                if p.0 > i {
                    p.0 -= 1;
                }
            }
        }
        plan
    }

    /// Out of memory under running sessions: sheds the newest running sessions
    /// not yet in this step's `plan` (their memory comes back at once; their
    /// waiting job, if any, is answered `overloaded`) until `n` more positions
    /// for `seq` fit. False when `seq` itself was shed.
    fn make_room(&mut self, seq: u64, n: usize, reserved: usize, plan: &[(usize, usize)], failed: &mut Vec<(usize, StepError)>) -> bool {
        self.reclaim(self.used + reserved + n, None);
        while self.used + reserved + n > self.capacity {
            let planned: HashSet<u64> = plan.iter().map(|&(p, _)| self.jobs[p].seq).collect();
            let Some(victim) = self.caches.keys().copied().filter(|s| !planned.contains(s)).max() else {
                return false;
            };
            if let Some(c) = self.caches.remove(&victim) {
                self.used -= E::cache_len(&c);
            }
            self.history.remove(&victim);
            self.broken.insert(victim, shed());
            self.metrics.reject(Rejection::Shed);
            if let Some(k) = self.jobs.iter().position(|j| j.seq == victim) {
                failed.push((k, shed()));
            }
            if victim == seq {
                return false;
            }
        }
        true
    }

    /// Gives new job `i` its cache, for its `left` ids: from the prefix cache
    /// when its prompt starts like an entry (then only the rest is prefilled),
    /// else a new one. Entries are evicted first so that the prompt fits
    /// beside the live sessions and this step's `reserved` rows. Returns the
    /// positions reused.
    fn admit(&mut self, i: usize, left: usize, reserved: usize) -> anyhow::Result<usize> {
        let j = &self.jobs[i];
        let seq = j.seq;
        let mut hit = None;
        // Prompt log-probs need every row's logits: no reuse for them. The
        // last id is always run (its logits are the answer).
        if self.prefix.enabled() && j.prompt_top.is_none() && j.done == 0 && j.keys.len() == j.ids.len() {
            self.metrics.prefix_queries.fetch_add(1, Ordering::Relaxed);
            hit = self.prefix.lookup(&j.keys[..j.keys.len().saturating_sub(1)]);
        }
        let hit = self.reclaim(self.used + reserved + left, hit);
        let (cache, keys) = match hit {
            Some(h) if h.whole => {
                let (keys, mut c) = self.prefix.take(h).ok_or_else(|| anyhow::anyhow!("a prefix-cache entry went missing"))?;
                self.engine.grow(&mut c, left - h.len)?;
                (c, Some(keys))
            }
            Some(h) => {
                let src = self.prefix.touch(h).ok_or_else(|| anyhow::anyhow!("a prefix-cache entry went missing"))?;
                (self.engine.prefix_of(src, h.len, left - h.len)?, Some(self.jobs[i].keys[..h.len].to_vec()))
            }
            None => (self.engine.new_cache(left)?, self.prefix.enabled().then(Vec::new)),
        };
        let reused = hit.map_or(0, |h| h.len);
        if reused > 0 {
            self.metrics.prefix_hits.fetch_add(1, Ordering::Relaxed);
            self.metrics.prefix_reused_tokens.fetch_add(reused as u64, Ordering::Relaxed);
        }
        if let Some(k) = keys {
            self.history.insert(seq, k);
        }
        self.used += reused;
        self.jobs[i].done += reused;
        self.caches.insert(seq, cache);
        Ok(reused)
    }

    /// Evicts prefix-cache entries, least recently used first and `keep`'s
    /// last, until they fit beside `live` positions; returns `keep` if it
    /// is still held.
    fn reclaim(&mut self, live: usize, keep: Option<prefix::Hit>) -> Option<prefix::Hit> {
        let (n, keep) = self.prefix.reclaim(live, self.capacity, keep);
        self.metrics.prefix_evictions.fetch_add(n as u64, Ordering::Relaxed);
        keep
    }

    fn run_step(&mut self, plan: Vec<(usize, usize)>) {
        let mut caches: Vec<(u64, E::Cache)> = plan
            .iter()
            .filter_map(|&(i, _)| {
                let seq = self.jobs[i].seq;
                self.caches.remove(&seq).map(|c| (seq, c))
            })
            .collect();
        let result = {
            let steps: Vec<EngineStep<'_, E::Cache>> = plan
                .iter()
                .zip(caches.iter_mut())
                .map(|(&(i, n), (_, cache))| {
                    let j = &self.jobs[i];
                    let range = j.done..j.done + n;
                    let embeds = j
                        .embeds
                        .iter()
                        .filter(|e| range.contains(&e.0))
                        .map(|(r, e)| (r - j.done, e.as_slice()))
                        .collect();
                    EngineStep { ids: &j.ids[range], cache, embeds, all_rows: j.prompt_top.is_some() }
                })
                .collect();
            self.metrics.steps.fetch_add(1, Ordering::Relaxed);
            self.metrics.step_sessions.fetch_add(steps.len() as u64, Ordering::Relaxed);
            let t0 = Instant::now();
            let result = self.engine.forward_batch(steps);
            self.last_step = t0.elapsed();
            result
        };
        self.last_ran = caches.iter().map(|(seq, _)| *seq).collect();
        let mut finished = Vec::new();
        match result {
            Ok(logits) => {
                for (seq, c) in caches {
                    self.caches.insert(seq, c);
                }
                for (&(i, n), l) in plan.iter().zip(logits) {
                    self.used += n;
                    let j = &mut self.jobs[i];
                    if let Some(h) = self.history.get_mut(&j.seq) {
                        match j.keys.get(j.done..j.done + n) {
                            Some(k) => h.extend_from_slice(k),
                            None => drop(self.history.remove(&j.seq)),
                        }
                    }
                    let l = match j.prompt_top {
                        None => l,
                        Some(top) => score_rows(j, n, l, top),
                    };
                    j.done += n;
                    if j.done == j.ids.len() {
                        let out = StepOut { logits: l, scored: std::mem::take(&mut j.scored) };
                        let _ = j.reply.send(Ok(out));
                        finished.push(i);
                        let now = Instant::now();
                        let m = &self.metrics;
                        // A later step's first id is the token sampled from the last one.
                        let prompt = if j.first { j.ids.len() } else { j.ids.len() - 1 };
                        m.prompt_tokens.fetch_add(prompt as u64, Ordering::Relaxed);
                        m.generation_tokens.fetch_add(1, Ordering::Relaxed);
                        let last = self.last_answer.insert(j.seq, now);
                        if j.first {
                            m.ttft.observe(now - j.since);
                        } else if let Some(last) = last {
                            m.itl.observe(now - last);
                        }
                    }
                }
            }
            Err(e) => {
                // The caches may hold part of the step: drop them.
                for (seq, c) in caches {
                    self.used -= E::cache_len(&c);
                    self.history.remove(&seq);
                    self.broken.insert(seq, StepError::Engine("an earlier step of this session failed".into()));
                }
                for &(i, _) in &plan {
                    let _ = self.jobs[i].reply.send(Err(StepError::Engine(format!("forward pass: {e}"))));
                    finished.push(i);
                }
            }
        }
        finished.sort_unstable_by(|a, b| b.cmp(a));
        for i in finished {
            self.jobs.remove(i);
        }
    }
}

/// Scores the `n` rows of logits `l` (`[n · vocab]`) that job `j` just ran from
/// its `done` id on: each row against the id after it. Returns the last row's
/// logits.
fn score_rows(j: &mut Job, n: usize, mut l: Vec<f32>, top: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let vocab = l.len() / n.max(1);
    let next = &j.ids[(j.done + 1).min(j.ids.len())..(j.done + n + 1).min(j.ids.len())];
    let rows: Vec<Scored> = l.par_chunks(vocab.max(1)).zip(next.par_iter()).map(|(row, &id)| score(row, id, top)).collect();
    j.scored.extend(rows);
    l.drain(..(n - 1) * vocab);
    l
}
