//! Keeping the rayon pool awake through a decode step.
//!
//! A step runs a few hundred short parallel regions (every matmul, every
//! layer's attention) with serial work between them. An idle rayon worker
//! yields a few dozen times and then sleeps on a futex, so after each serial
//! gap of some tens of microseconds the next region paid a wake-up, and in a
//! VM that is a good part of the region itself. [`run`] keeps the other
//! workers polling for work until the step ends: each takes a spinner job
//! that executes whatever the step's thread shares out and otherwise yields
//! the CPU to other runnable threads (a request's guest, say). Between steps
//! they go back to sleeping as before.

use rayon::Yield;
use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `f` on the rayon pool with the other workers kept busy-polling until
/// it returns.
pub fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let done = AtomicBool::new(false);
    rayon::scope(|s| {
        let me = rayon::current_thread_index();
        for _ in 1..rayon::current_num_threads() {
            let done = &done;
            s.spawn(move |_| {
                // The thread running `f` may pop a spinner itself while it
                // waits inside `f`; polling there would never end.
                if rayon::current_thread_index() == me {
                    return;
                }
                while !done.load(Ordering::Acquire) {
                    if rayon::yield_now() != Some(Yield::Executed) {
                        std::thread::yield_now();
                    }
                }
            });
        }
        let r = f();
        done.store(true, Ordering::Release);
        r
    })
}

#[cfg(test)]
mod tests {
    use rayon::prelude::*;

    fn work(n: u64) -> u64 {
        (0..n).into_par_iter().map(|i| i * i % 7).sum()
    }

    fn want_small() -> u64 {
        (0..20_000u64).map(|i| i * i % 7).sum()
    }

    #[test]
    fn gives_the_result_of_nested_parallel_work() {
        let want: u64 = (0..100_000u64).map(|i| i * i % 7).sum();
        for _ in 0..50 {
            assert_eq!(super::run(|| work(100_000)), want);
        }
        // Nested, and from inside the pool while every worker is busy: the
        // spinners then wait in the deque of the thread that spawned them.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().expect("pool");
        for _ in 0..20 {
            let got: Vec<u64> = pool.install(|| (0..16).into_par_iter().map(|_| super::run(|| super::run(|| work(20_000)))).collect());
            assert!(got.iter().all(|&g| g == want_small()));
        }
    }

    #[test]
    fn works_on_a_pool_of_one_and_of_many() {
        let want: u64 = (0..10_000u64).map(|i| i * i % 7).sum();
        for threads in [1, 5] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
            assert_eq!(pool.install(|| super::run(|| work(10_000))), want);
        }
    }
}
