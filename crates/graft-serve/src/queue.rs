//! The queue and the backend. Requests put decoded images on a bounded channel (full: the
//! router answers 429); one task gathers them into batches (up to `max_batch`, waiting at most
//! `max_delay` after the first) and drops those whose client went away; one thread runs each
//! batch through the model and answers every image. One channel between each, as in
//! text-embeddings-inference.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use graft_run::Servable;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;

/// One image waiting for the model.
pub struct Job {
    pub pixels: Vec<f32>,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<Result<Vec<f32>, String>>,
}

/// Gathers jobs into batches and hands them to the backend; ends when every sender is gone.
pub async fn batcher(
    mut jobs: mpsc::Receiver<Job>,
    backend: mpsc::Sender<Vec<Job>>,
    max_batch: usize,
    max_delay: Duration,
    metrics: Arc<Metrics>,
) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + max_delay;
        while batch.len() < max_batch {
            match tokio::time::timeout_at(deadline, jobs.recv()).await {
                Ok(Some(job)) => batch.push(job),
                Ok(None) | Err(_) => break,
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
        if backend.send(batch).await.is_err() {
            break;
        }
    }
}

/// Runs batches on this thread until the batcher is gone.
pub fn backend(model: Servable, mut batches: mpsc::Receiver<Vec<Job>>, metrics: Arc<Metrics>) {
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
