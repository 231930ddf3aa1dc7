//! The prefix cache inside the engine thread, on the tiny Reka checkpoint
//! (tests/fixtures/reka_tiny, 128 bytes of KV per position): a prompt that
//! reuses an earlier session's positions gets the same logits, bit for bit, as
//! one prefilled whole with the cache off (in other chunkings, too); reuse
//! shows in the metrics; and live sessions take the cache's memory back.

use super::scheduler::{Limits, Scheduler};
use crate::metrics::{self, EngineMetrics};
use crate::model;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn tiny() -> Arc<model::LoadedModel> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reka_tiny");
    Arc::new(model::load("reka-tiny", &dir).expect("the tiny checkpoint loads"))
}

fn engine(name: &str, kv_positions: usize, step_tokens: usize, prefix_cache_bytes: usize) -> (Arc<Scheduler>, Arc<EngineMetrics>) {
    let m = tiny();
    let limits = Limits { kv_budget_bytes: 128 * kv_positions, step_tokens, prefix_cache_bytes, ..Limits::default() };
    let model = m.decoder.clone();
    let s = Scheduler::start_on(name, super::engines::CpuEngine(model), limits).expect("engine thread");
    (s, metrics::engine(name))
}

fn get(a: &std::sync::atomic::AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// A gauge once the engine thread has published `want` (it publishes between
/// steps, and a session's end is a message it takes a moment to get), or
/// what it holds after 5 s.
fn settled(a: &std::sync::atomic::AtomicU64, want: u64) -> u64 {
    for _ in 0..500 {
        if get(a) == want {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    get(a)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Runs `prompt` then `decode` one id at a time in a new session, and ends it.
fn turn(e: &Scheduler, prompt: &[u32], decode: &[u32]) -> Vec<Vec<f32>> {
    let s = e.open();
    let mut out = vec![e.step(s, prompt.to_vec()).expect("prompt step")];
    for &d in decode {
        out.push(e.step(s, vec![d]).expect("decode step"));
    }
    e.free(s);
    out
}

#[test]
fn reused_prefixes_give_the_bits_of_a_whole_prefill() {
    let (on, m) = engine("tiny-prefix-on", 4096, 16, usize::MAX);
    let (off, m_off) = engine("tiny-prefix-off", 4096, 64, 0);
    let first: Vec<u32> = (0..41).map(|i| 200 + i * 7).collect();
    let answer = [901, 902, 903];
    assert_eq!(turn(&on, &first, &answer).len(), 4);
    // The next turn: the first prompt, the answer, and 20 new ids.
    let mut second = first.clone();
    second.extend_from_slice(&answer);
    second.extend((0..20).map(|i| 5000 + i));
    let a = turn(&on, &second, &[77, 78]);
    let b = turn(&off, &second, &[77, 78]);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(bits(x), bits(y), "cache on and off differ");
    }
    assert_eq!((get(&m.prefix_queries), get(&m.prefix_hits)), (2, 1));
    assert_eq!(get(&m.prefix_reused_tokens), 44, "41 prompt ids and 3 answer ids reused");
    // A partial match copies 30 positions and leaves the entry in place.
    let mut third = second[..30].to_vec();
    third.extend([6000, 6001, 6002]);
    let a = turn(&on, &third, &[9]);
    let b = turn(&off, &third, &[9]);
    assert_eq!(bits(&a[0]), bits(&b[0]));
    assert_eq!(bits(&a[1]), bits(&b[1]));
    assert_eq!(get(&m.prefix_reused_tokens), 74);
    // A prompt the cache holds whole still runs its last id.
    let a = turn(&on, &third, &[]);
    assert_eq!(bits(&a[0]), bits(&b[0]));
    assert_eq!(get(&m.prefix_reused_tokens), 74 + 32);
    // A different first id shares nothing.
    let hits = get(&m.prefix_hits);
    turn(&on, &[1, 2, 3], &[]);
    assert_eq!(get(&m.prefix_hits), hits);
    assert_eq!((get(&m_off.prefix_queries), get(&m_off.prefix_budget), get(&m_off.prefix_bytes)), (0, 0, 0));
    assert_eq!(get(&m.prefix_budget), 128 * 4096);
    assert_eq!(settled(&m.prefix_bytes, 128 * 103), 128 * 103, "66 + 34 + 3 positions held");
}

#[test]
fn live_sessions_evict_cached_prefixes_least_recently_used_first() {
    // 64 positions in all.
    let (e, m) = engine("tiny-prefix-evict", 64, 64, usize::MAX);
    let a: Vec<u32> = (300..320).collect();
    let b: Vec<u32> = (400..420).collect();
    turn(&e, &a, &[]);
    turn(&e, &b, &[]);
    // Both kept (40 positions); using a makes b the least recently used (and
    // keeps a 5-position entry: 45 held).
    turn(&e, &[300, 301, 302, 303, 5], &[]);
    assert_eq!(get(&m.prefix_evictions), 0);
    // A 30-position prompt needs 30 of the 19 left: b goes, a stays.
    let s = e.open();
    e.step(s, (500..530).collect()).expect("admitted");
    assert_eq!(get(&m.prefix_evictions), 1);
    let reused = get(&m.prefix_reused_tokens);
    turn(&e, &[300, 301, 302, 9], &[]);
    assert_eq!(get(&m.prefix_reused_tokens), reused + 3, "a is still held");
    let reused = get(&m.prefix_reused_tokens);
    turn(&e, &[400, 401, 9], &[]);
    assert_eq!(get(&m.prefix_reused_tokens), reused, "b was evicted");
    // A live prompt of the whole budget empties the cache rather than wait.
    e.free(s);
    let t = e.open();
    e.step(t, (600..664).collect()).expect("the whole budget is the live session's");
    assert_eq!(settled(&m.prefix_bytes, 0), 0);
    assert_eq!(settled(&m.kv_bytes, 64 * 128), 64 * 128);
    e.free(t);
}

/// A bound below the budget: the cache never holds more.
#[test]
fn the_prefix_cache_bound_holds() {
    let (e, m) = engine("tiny-prefix-bound", 1000, 64, 128 * 25);
    assert_eq!(get(&m.prefix_budget), 128 * 25);
    turn(&e, &(700..720).collect::<Vec<_>>(), &[]);
    assert_eq!(settled(&m.prefix_bytes, 128 * 20), 128 * 20);
    turn(&e, &(800..820).collect::<Vec<_>>(), &[]);
    assert_eq!(settled(&m.prefix_bytes, 128 * 20), 128 * 20, "the older went for the newer");
    assert_eq!(settled(&m.prefix_evictions, 1), 1);
    turn(&e, &(900..930).collect::<Vec<_>>(), &[]);
    assert_eq!(settled(&m.prefix_bytes, 128 * 20), 128 * 20, "a sequence larger than the bound is not kept");
}
