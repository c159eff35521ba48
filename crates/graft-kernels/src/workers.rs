//! Whole passes on rayon's worker threads.

/// Runs `f` on one of rayon's worker threads and waits for it once; on a worker already, runs it
/// in place.
///
/// A parallel loop started outside the pool (the CLI's main thread, a server's blocking task)
/// is injected into the pool's queue while its caller sleeps on a lock until the loop ends, so
/// a pass of many short parallel loops pays a sleep and a wake-up per loop: EfficientNet-Lite0
/// has about a hundred a pass, and at batch 1 that was a tenth of its time (BENCHMARKS.md). From
/// a worker, a nested loop is pushed on the worker's own deque and the worker keeps running.
pub fn on_workers<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    rayon::scope(|_| f())
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
}
