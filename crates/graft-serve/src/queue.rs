//! The queue and the backend. Requests put decoded images on a bounded channel (full: the
//! router answers 429); one task gathers them into batches (up to `max_batch`) and drops those
//! whose client went away; one thread runs each batch through the model and answers every
//! image. One channel between each, as in text-embeddings-inference.
//!
//! How long a batch waits for company is the [`BatchWait`] policy. `Adaptive` (the default)
//! waits only while waiting can pay: while the model is busy (the batch would queue anyway) or
//! while images of requests already received are being decoded (they are about to join), and
//! never longer than `max_delay` once the model is free. A lone request on an idle server goes
//! straight to the model, as in text-embeddings-inference. `Always` waits out `max_delay` or
//! fills the batch, as Triton's dynamic batcher does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use graft_run::Servable;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::metrics::Metrics;

/// One image waiting for the model.
pub struct Job {
    pub pixels: Vec<f32>,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<Result<Vec<f32>, String>>,
}

/// When a batch stops waiting for more images (see the module's documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BatchWait {
    #[default]
    Adaptive,
    Always,
}

impl std::str::FromStr for BatchWait {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "adaptive" => Ok(Self::Adaptive),
            "always" => Ok(Self::Always),
            _ => Err(format!("{text:?}: the batch wait is adaptive or always")),
        }
    }
}

/// What the batcher watches besides its queue: requests whose images are still arriving or
/// being decoded, and batches the backend has not finished.
#[derive(Debug, Default)]
pub struct Flow {
    arriving: AtomicUsize,
    running: AtomicUsize,
    finished: Notify,
}

/// A request that will queue images; dropped once they are queued (or the request failed).
pub struct Arriving<'a>(&'a Flow);

impl Drop for Arriving<'_> {
    fn drop(&mut self) {
        self.0.arriving.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Flow {
    pub fn arriving(&self) -> Arriving<'_> {
        self.arriving.fetch_add(1, Ordering::AcqRel);
        Arriving(self)
    }

    fn model_idle(&self) -> bool {
        self.running.load(Ordering::Acquire) == 0
    }

    fn nothing_arriving(&self) -> bool {
        self.arriving.load(Ordering::Acquire) == 0
    }
}

/// Whether a batch that is not full goes to the model now. A pure decision, tested below.
fn dispatch_now(
    wait: BatchWait,
    model_idle: bool,
    nothing_arriving: bool,
    deadline_passed: bool,
) -> bool {
    match wait {
        BatchWait::Always => deadline_passed,
        BatchWait::Adaptive => model_idle && (nothing_arriving || deadline_passed),
    }
}

/// Gathers jobs into batches and hands them to the backend; ends when every sender is gone.
pub async fn batcher(
    mut jobs: mpsc::Receiver<Job>,
    backend: mpsc::Sender<Vec<Job>>,
    max_batch: usize,
    max_delay: Duration,
    wait: BatchWait,
    flow: Arc<Flow>,
    metrics: Arc<Metrics>,
) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + max_delay;
        let mut open = true;
        while open && batch.len() < max_batch {
            // Registered before the checks, so a batch finishing meanwhile is not missed.
            let finished = flow.finished.notified();
            match jobs.try_recv() {
                Ok(job) => {
                    batch.push(job);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            let passed = tokio::time::Instant::now() >= deadline;
            // A backend that has stopped counts as idle: the send below then ends the batcher.
            let idle = flow.model_idle() || backend.is_closed();
            if dispatch_now(wait, idle, flow.nothing_arriving(), passed) {
                break;
            }
            // Adaptive waits past the deadline only while the model is busy, for it. The timer
            // still wakes the loop then: a backend that died never signals `finished`, and is
            // only seen (closed) when the loop looks again.
            let until = if passed {
                tokio::time::Instant::now() + max_delay.max(Duration::from_millis(1))
            } else {
                deadline
            };
            tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => batch.push(job),
                    None => open = false,
                },
                () = finished, if wait == BatchWait::Adaptive => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
        metrics
            .queue_depth
            .store(jobs.len() as u64, Ordering::Relaxed);
        // A client that went away gets no inference.
        batch.retain(|j| !j.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        flow.running.fetch_add(1, Ordering::AcqRel);
        if backend.send(batch).await.is_err() {
            break;
        }
    }
}

/// Runs batches on this thread until the batcher is gone.
pub fn backend(
    model: Servable,
    mut batches: mpsc::Receiver<Vec<Job>>,
    flow: Arc<Flow>,
    metrics: Arc<Metrics>,
) {
    while let Some(batch) = batches.blocking_recv() {
        let start = Instant::now();
        let n = batch.len();
        for j in &batch {
            metrics
                .queue
                .observe(start.duration_since(j.enqueued).as_secs_f64());
        }
        let mut pixels = Vec::with_capacity(batch.iter().map(|j| j.pixels.len()).sum());
        let mut replies = Vec::with_capacity(n);
        for j in batch {
            pixels.extend_from_slice(&j.pixels);
            replies.push(j.reply);
        }
        let result = model.probabilities(pixels, n);
        metrics.inference.observe(start.elapsed().as_secs_f64());
        metrics.batch_size.observe(n as f64);
        flow.running.fetch_sub(1, Ordering::AcqRel);
        flow.finished.notify_one();
        match result {
            Ok(rows) => {
                for (reply, row) in replies.into_iter().zip(rows) {
                    // The client may have gone meanwhile: nothing to answer then.
                    let _ = reply.send(Ok(row));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_sends_a_lone_image_to_an_idle_model_at_once() {
        assert!(dispatch_now(BatchWait::Adaptive, true, true, false));
        // Triton's policy waits out the delay even then.
        assert!(!dispatch_now(BatchWait::Always, true, true, false));
    }

    #[test]
    fn adaptive_waits_for_a_busy_model_and_for_images_being_decoded() {
        // The model is busy: the batch would only queue, so it keeps gathering, even late.
        assert!(!dispatch_now(BatchWait::Adaptive, false, true, false));
        assert!(!dispatch_now(BatchWait::Adaptive, false, true, true));
        // Images of received requests are on their way: wait for them, up to the deadline.
        assert!(!dispatch_now(BatchWait::Adaptive, true, false, false));
        assert!(dispatch_now(BatchWait::Adaptive, true, false, true));
        assert!(dispatch_now(BatchWait::Always, false, false, true));
    }

    #[test]
    fn a_request_stops_arriving_when_its_guard_drops() {
        let flow = Flow::default();
        let a = flow.arriving();
        let b = flow.arriving();
        assert!(!flow.nothing_arriving());
        drop(a);
        assert!(!flow.nothing_arriving());
        drop(b);
        assert!(flow.nothing_arriving());
    }
}
