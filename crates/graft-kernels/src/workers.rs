//! Whole passes on rayon's worker threads.

use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `f` on one of rayon's worker threads and waits for it once; on a worker already, runs it
/// in place.
///
/// A parallel loop started outside the pool (the CLI's main thread, a server's blocking task)
/// is injected into the pool's queue while its caller sleeps on a lock until the loop ends, so
/// a pass of many short parallel loops pays a sleep and a wake-up per loop: EfficientNet-Lite0
/// has about a hundred a pass, and at batch 1 that was a tenth of its time (BENCHMARKS.md). From
/// a worker, a nested loop is pushed on the worker's own deque and the worker keeps running.
///
/// Between loops the other workers would still fall asleep, and each loop would wake them with
/// a system call: at batch 1 a loop is a few tens of microseconds of work. So while `f` runs,
/// every other worker runs a task that keeps taking the pool's work as it appears and spins
/// in between (as ONNX Runtime's pool does between operators); it stops when `f` returns or
/// panics.
pub fn on_workers<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    let done = AtomicBool::new(false);
    rayon::scope(|s| {
        let runner = rayon::current_thread_index();
        let done = &done;
        for _ in 1..rayon::current_num_threads() {
            s.spawn(move |_| keep_awake(done, runner));
        }
        let _stop = Stop(done);
        f()
    })
}

/// Takes the pool's work as it appears until `done`; returns at once on `runner`, the worker
/// running the pass (which may pop this task while it waits inside the pass, and must not spin
/// there: the pass could not finish).
fn keep_awake(done: &AtomicBool, runner: Option<usize>) {
    if rayon::current_thread_index() == runner {
        return;
    }
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            std::hint::spin_loop();
        }
    }
}

/// Sets its flag when dropped: when the pass returns, and when it unwinds.
struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_on_a_worker_and_returns_the_value() {
        let (inside, value) = on_workers(|| (rayon::current_thread_index().is_some(), 7));
        assert!(inside);
        assert_eq!(value, 7);
        // Nested: stays on the same worker.
        let nested = on_workers(|| {
            let outer = rayon::current_thread_index();
            on_workers(|| rayon::current_thread_index() == outer)
        });
        assert!(nested);
    }

    #[test]
    fn the_other_workers_take_the_pass_s_loops_and_stop_with_it() {
        use rayon::prelude::*;
        // A pass of many short loops: its values are the plain loop's.
        let sums = on_workers(|| {
            (0..200)
                .map(|i| (0..64u64).into_par_iter().map(|j| j * i).sum::<u64>())
                .collect::<Vec<_>>()
        });
        let want: Vec<u64> = (0..200).map(|i| (0..64u64).map(|j| j * i).sum()).collect();
        assert_eq!(sums, want);
        // A pass that panics stops the spinning workers too: the panic comes back, no hang.
        let caught = std::panic::catch_unwind(|| on_workers(|| panic!("a failing pass")));
        assert!(caught.is_err());
        assert_eq!(on_workers(|| 3), 3);
    }
}
