//! Per-request limits of a guest: linear memory and wasm execution time.
//!
//! Set per component in `spin.toml` under the tool table Spin leaves to other
//! tools (`[component.<id>.tool.reka-host]`, ignored by Spin itself):
//!
//! ```toml
//! [component.api.tool.reka-host]
//! max_memory_mb = 512      # each linear memory of one request's instance
//! max_wasm_time_ms = 30000 # time spent executing the guest's own code
//! ```
//!
//! Memory is enforced by a [`wasmtime::ResourceLimiter`]; time by epoch
//! interruption: a ticker advances the engine's epoch every [`TICK`], and each
//! store's deadline callback counts the ticks in which the guest's code ran (time
//! in host calls, such as a `wasi:nn` compute or a socket write, does not count,
//! so a long generation is not cut). The callback also yields to the async
//! executor at every tick, so that a request whose client has gone can be dropped
//! even while its guest computes. Which limit ended a request is kept in a
//! [`LimitHit`] so that the server can say so.

use anyhow::{bail, Context, Result};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};

/// How often the epoch advances.
pub const TICK: Duration = Duration::from_millis(10);

/// The limits of one component's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestLimits {
    /// Largest size of each linear memory, in bytes.
    pub max_memory_bytes: usize,
    /// Most time the guest's own code may run per request.
    pub max_wasm_time: Duration,
}

impl Default for GuestLimits {
    fn default() -> Self {
        Self {
            max_memory_bytes: 2 << 30,
            max_wasm_time: Duration::from_secs(60),
        }
    }
}

/// The tool table's name in `spin.toml`.
pub const TOOL: &str = "reka-host";

impl GuestLimits {
    /// Reads `[component.<id>.tool.reka-host]`; absent keys keep their defaults,
    /// unknown keys are an error (a typo must not silently lift a limit).
    pub fn from_tool_table(table: Option<&toml::Table>) -> Result<Self> {
        let mut limits = Self::default();
        let Some(table) = table else { return Ok(limits) };
        for (key, value) in table {
            let n = value
                .as_integer()
                .filter(|n| *n > 0)
                .with_context(|| format!("tool.{TOOL}.{key} must be a positive integer"))?;
            match key.as_str() {
                "max_memory_mb" => {
                    limits.max_memory_bytes = usize::try_from(n)
                        .ok()
                        .and_then(|n| n.checked_mul(1 << 20))
                        .with_context(|| format!("tool.{TOOL}.max_memory_mb = {n} is too large"))?
                }
                "max_wasm_time_ms" => limits.max_wasm_time = Duration::from_millis(n as u64),
                other => bail!("tool.{TOOL}: unknown key {other:?} (known: max_memory_mb, max_wasm_time_ms)"),
            }
        }
        Ok(limits)
    }
}

/// Which limit, if any, ended a request.
#[derive(Debug, Clone, Default)]
pub struct LimitHit(Arc<AtomicU8>);

const MEMORY: u8 = 1;
const TIME: u8 = 2;

impl LimitHit {
    fn set(&self, which: u8) {
        let _ = self.0.compare_exchange(0, which, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// A sentence for the client naming the limit that was hit, if one was.
    pub fn message(&self, limits: &GuestLimits) -> Option<String> {
        match self.0.load(Ordering::Relaxed) {
            MEMORY => Some(format!(
                "the request was stopped: its component exceeded its memory limit ({} MiB)",
                limits.max_memory_bytes >> 20
            )),
            TIME => Some(format!(
                "the request was stopped: its component exceeded its time limit ({} ms of wasm execution)",
                limits.max_wasm_time.as_millis()
            )),
            _ => None,
        }
    }
}

/// The [`ResourceLimiter`] of one request's store.
#[derive(Debug)]
pub struct Limiter {
    limits: GuestLimits,
    hit: LimitHit,
}

impl Limiter {
    pub fn new(limits: GuestLimits, hit: LimitHit) -> Self {
        Self { limits, hit }
    }

    /// The record of which limit, if any, was hit.
    pub fn hit(&self) -> LimitHit {
        self.hit.clone()
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limits.max_memory_bytes {
            self.hit.set(MEMORY);
            return Err(wasmtime::format_err!(
                "memory limit: {desired} bytes asked, {} allowed",
                self.limits.max_memory_bytes
            ));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Tables of funcrefs: 1M entries is far beyond any real guest.
        Ok(desired <= 1 << 20)
    }
}

/// Something whose store data can lend its [`Limiter`].
pub trait HasLimiter {
    fn limiter(&mut self) -> &mut Limiter;
}

/// Installs the memory limiter and the time accounting on a fresh store.
pub fn apply<T: HasLimiter + 'static>(store: &mut Store<T>, limits: GuestLimits, hit: LimitHit) {
    store.limiter(|s| s.limiter());
    let allowed_ticks = (limits.max_wasm_time.as_millis() / TICK.as_millis()).max(1) as u64;
    let mut ran = 0u64;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        ran += 1;
        if ran > allowed_ticks {
            hit.set(TIME);
            return Err(wasmtime::format_err!("time limit: the guest ran {} ms", ran * TICK.as_millis() as u64));
        }
        Ok(UpdateDeadline::Yield(1))
    });
}

/// Starts the thread that advances `engine`'s epoch every [`TICK`].
pub fn start_ticker(engine: &Engine) -> std::io::Result<()> {
    let engine = engine.weak();
    std::thread::Builder::new().name("reka-epoch".into()).spawn(move || {
        while let Some(engine) = engine.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(TICK);
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_table_sets_limits_and_refuses_typos() -> Result<()> {
        let t: toml::Table = toml::from_str("max_memory_mb = 64\nmax_wasm_time_ms = 1500")?;
        let l = GuestLimits::from_tool_table(Some(&t))?;
        assert_eq!(l.max_memory_bytes, 64 << 20);
        assert_eq!(l.max_wasm_time, Duration::from_millis(1500));
        assert_eq!(GuestLimits::from_tool_table(None)?, GuestLimits::default());
        let typo: toml::Table = toml::from_str("max_memroy_mb = 64")?;
        assert!(GuestLimits::from_tool_table(Some(&typo)).is_err());
        let negative: toml::Table = toml::from_str("max_memory_mb = -1")?;
        assert!(GuestLimits::from_tool_table(Some(&negative)).is_err());
        Ok(())
    }
}
