//! The queue and the backend. Requests put their images, still encoded, on a bounded channel
//! (full: the router answers 429); one task gathers them into batches (up to `max_batch`) and
//! drops those whose client went away; one thread decodes each batch into one buffer, runs it
//! through the model and answers every image. One channel between each, as in
//! text-embeddings-inference.
//!
//! Decoding is the first step of a batch, in parallel over its images on the model's own
//! threads, rather than on a pool of its own beside the model: on a machine whose cores the
//! model already keeps busy, a decode running beside a pass takes a core from one of the
//! pass's parallel loops, and the other core waits at the loop's end for it. Each image is
//! decoded straight into its slot of the batch, so there is no per-image buffer to gather.
//!
//! Between batches, and once it has been idle for a while, the backend gives the heap's free
//! pages back to the system ([`Release`]).
//!
//! How long a batch waits for company is the [`BatchWait`] policy. `Adaptive` (the default)
//! waits only while waiting can pay: while the model is busy (the batch would queue anyway),
//! while requests already received are still being read (they are about to join), or, just
//! after a batch was answered, until as many images as it had are back (its clients, each
//! sending its next request on its answer), and never longer than `max_delay` once the model
//! is free. A lone request on an idle server goes straight to the model, as in
//! text-embeddings-inference. `Always` waits out `max_delay` or fills the batch, as Triton's
//! dynamic batcher does.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use graft_data::Preprocess;
use graft_run::Servable;
use rayon::prelude::*;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::metrics::Metrics;

/// One image as a request hands it over.
pub enum Input {
    /// An encoded image file (its header already checked); `name` is what errors call it.
    Encoded { bytes: Vec<u8>, name: String },
    /// Preprocessed pixels, `[3, crop, crop]` (a V2 FP32 tensor).
    Pixels(Vec<f32>),
}

/// Why an image got no probabilities.
#[derive(Debug)]
pub enum JobError {
    /// Its file could not be decoded (the decoder's reason, naming the file).
    Undecodable(String),
    /// The forward pass failed.
    Model(String),
}

/// One image waiting for the model.
pub struct Job {
    pub input: Input,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<Result<Vec<f32>, JobError>>,
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

/// What the batcher watches besides its queue: requests received but not yet queued (their
/// bodies still being read and checked), and batches the backend has not finished.
#[derive(Debug, Default)]
pub struct Flow {
    arriving: AtomicUsize,
    running: AtomicUsize,
    finished: Notify,
    /// The last batch's images, and when the model finished it.
    last: Mutex<Option<(usize, Instant)>>,
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

    fn batch_finished(&self, images: usize, at: Instant) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some((images, at));
    }

    /// Images a batch begun at `now` can expect: the last batch's, if it finished within
    /// `window` (its clients are coming back), else one. Without this, under a closed loop of
    /// clients the first to come back after a batch went to the model alone, and the rest
    /// waited for it: at 32 clients, 11 of ResNet-50's 25 batches in 15 s held one image.
    fn expected(&self, now: Instant, window: Duration) -> usize {
        match *self.last.lock().unwrap_or_else(PoisonError::into_inner) {
            Some((images, at)) if now.saturating_duration_since(at) <= window => images.max(1),
            _ => 1,
        }
    }
}

/// What a batch that is not full sees when it decides whether to go.
#[derive(Clone, Copy, Debug)]
struct Gathering {
    model_idle: bool,
    nothing_arriving: bool,
    /// The batch holds fewer images than [`Flow::expected`].
    short: bool,
    deadline_passed: bool,
}

/// Whether a batch that is not full goes to the model now. A pure decision, tested below.
fn dispatch_now(wait: BatchWait, g: Gathering) -> bool {
    match wait {
        BatchWait::Always => g.deadline_passed,
        BatchWait::Adaptive => {
            g.model_idle && ((g.nothing_arriving && !g.short) || g.deadline_passed)
        }
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
        let expected = flow.expected(Instant::now(), max_delay).min(max_batch);
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
            let gathering = Gathering {
                model_idle: idle,
                nothing_arriving: flow.nothing_arriving(),
                short: batch.len() < expected,
                deadline_passed: passed,
            };
            if dispatch_now(wait, gathering) {
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

/// Writes `input` into `slot` (one image's values of a batch): decoded and preprocessed, or
/// copied.
fn fill(pre: &Preprocess, input: &Input, slot: &mut [f32]) -> Result<(), String> {
    match input {
        // A decoder that panics on some crafted file fails that image alone: unwinding out of
        // here would end the backend thread, and with it every later request.
        Input::Encoded { bytes, name } => std::panic::catch_unwind(AssertUnwindSafe(|| {
            pre.bytes_into(bytes, Path::new(name), slot)
        }))
        .map_err(|_| format!("{name}: the image decoder failed on this file"))?
        .map_err(|e| e.to_string()),
        Input::Pixels(p) if p.len() == slot.len() => {
            slot.copy_from_slice(p);
            Ok(())
        }
        Input::Pixels(p) => Err(format!(
            "expected {} values an image, got {}",
            slot.len(),
            p.len()
        )),
    }
}

/// Decodes a batch's images in parallel into one buffer of `len` values an image. Returns the
/// buffer holding the images that decoded, in order, and the jobs split into those and the
/// ones that failed, each with its reason.
#[allow(clippy::type_complexity)]
fn decode_batch(
    pre: &Preprocess,
    batch: Vec<Job>,
    len: usize,
    metrics: &Metrics,
) -> (Vec<f32>, Vec<Job>, Vec<(Job, String)>) {
    let mut pixels = vec![0f32; batch.len() * len];
    let outcomes: Vec<Result<(), String>> = pixels
        .par_chunks_mut(len.max(1))
        .zip(batch.par_iter())
        .map(|(slot, job)| {
            let start = Instant::now();
            let done = fill(pre, &job.input, slot);
            if matches!(job.input, Input::Encoded { .. }) {
                metrics.decode.observe(start.elapsed().as_secs_f64());
            }
            done
        })
        .collect();
    let (mut ok, mut failed) = (Vec::with_capacity(batch.len()), Vec::new());
    for (i, (job, outcome)) in batch.into_iter().zip(outcomes).enumerate() {
        match outcome {
            Ok(()) => {
                // Close the gap left by the images that failed before it.
                let to = ok.len() * len;
                if to != i * len {
                    pixels.copy_within(i * len..(i + 1) * len, to);
                }
                ok.push(job);
            }
            Err(e) => failed.push((job, e)),
        }
    }
    pixels.truncate(ok.len() * len);
    (pixels, ok, failed)
}

/// How often the backend gives the heap's free pages back to the system
/// ([`graft_models::release_freed_memory`]). The process keeps freed memory for reuse, and
/// batches of every size from 1 to `max_batch` leave holes in the heap that later batches
/// cannot always reuse, so without this its RSS crept up in steps over a soak (Lite0 at
/// concurrency 32: 188 to 212 MiB in 3.5 minutes). Each release costs the next batch the page
/// faults of what it touches again: once in 10 s, no loss measurable in throughput.
const RELEASE_EVERY: Duration = Duration::from_secs(10);

/// When the backend releases memory: at most every [`RELEASE_EVERY`], and only if batches ran
/// since the last release. An idle backend waits for its next batch only until a release is
/// due, so a server that goes quiet gives back what its last batches left. A pure decision,
/// tested below.
struct Release {
    last: Instant,
    ran: bool,
}

impl Release {
    fn new(now: Instant) -> Self {
        Self {
            last: now,
            ran: false,
        }
    }

    /// How long until a release is due; `None` while there is nothing to release.
    fn due_in(&self, now: Instant) -> Option<Duration> {
        self.ran
            .then(|| (self.last + RELEASE_EVERY).saturating_duration_since(now))
    }

    fn ran(&mut self) {
        self.ran = true;
    }

    /// Records a release at `now`.
    fn done(&mut self, now: Instant) {
        self.last = now;
        self.ran = false;
    }
}

/// Releases the heap's free pages if a release is due.
fn release_if_due(release: &mut Release) {
    let now = Instant::now();
    if release.due_in(now) == Some(Duration::ZERO) {
        graft_models::release_freed_memory();
        release.done(now);
    }
}

/// How the backend waits for its next batch: until a release is due at most, timed by a
/// one-thread runtime of its own. Not the server's runtime: that one may shut down while the
/// backend still waits (when `axum::serve` fails), and its timers then panic. Without a timer
/// (its runtime could not be built, which is logged) an idle backend waits without releasing.
struct Waiter {
    timer: Option<tokio::runtime::Runtime>,
}

/// A wait that ended because a release fell due.
#[derive(Debug, PartialEq)]
struct Due;

impl Waiter {
    fn new() -> Self {
        let timer = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .inspect_err(|e| {
                eprintln!("graft serve: an idle server will not release memory (no timer: {e})")
            })
            .ok();
        Self { timer }
    }

    /// The next item, `None` once every sender is gone; [`Due`] if `due` passed first.
    fn next<T>(
        &self,
        items: &mut mpsc::Receiver<T>,
        due: Option<Duration>,
    ) -> Result<Option<T>, Due> {
        match (due, &self.timer) {
            // The timeout is made inside `block_on`: it needs the runtime's context.
            (Some(wait), Some(timer)) => timer
                .block_on(async { tokio::time::timeout(wait, items.recv()).await })
                .map_err(|_| Due),
            _ => Ok(items.blocking_recv()),
        }
    }
}

/// Runs batches on this thread until the batcher is gone, releasing memory after batches and
/// when idle (see [`Release`], [`Waiter`]).
pub fn backend(
    model: Servable,
    mut batches: mpsc::Receiver<Vec<Job>>,
    flow: Arc<Flow>,
    metrics: Arc<Metrics>,
) {
    let pre = model.model.preprocess;
    let len = 3 * (pre.crop as usize).pow(2);
    let mut release = Release::new(Instant::now());
    let waiter = Waiter::new();
    loop {
        let Ok(next) = waiter.next(&mut batches, release.due_in(Instant::now())) else {
            // Idle until a release was due.
            release_if_due(&mut release);
            continue;
        };
        let Some(batch) = next else { break };
        let start = Instant::now();
        for j in &batch {
            metrics
                .queue
                .observe(start.duration_since(j.enqueued).as_secs_f64());
        }
        let (pixels, batch, failed) = decode_batch(&pre, batch, len, &metrics);
        for (job, e) in failed {
            let _ = job.reply.send(Err(JobError::Undecodable(e)));
        }
        let n = batch.len();
        let result = if n == 0 {
            None
        } else {
            let infer = Instant::now();
            let result = model.probabilities(pixels, n);
            metrics.inference.observe(infer.elapsed().as_secs_f64());
            metrics.batch_size.observe(n as f64);
            Some(result)
        };
        flow.batch_finished(n, Instant::now());
        flow.running.fetch_sub(1, Ordering::AcqRel);
        flow.finished.notify_one();
        match result {
            None => {}
            Some(Ok(rows)) => {
                for (job, row) in batch.into_iter().zip(rows) {
                    // The client may have gone meanwhile: nothing to answer then.
                    let _ = job.reply.send(Ok(row));
                }
            }
            Some(Err(e)) => {
                for job in batch {
                    let _ = job.reply.send(Err(JobError::Model(e.to_string())));
                }
            }
        }
        release.ran();
        release_if_due(&mut release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lone image on an idle model, nothing else arriving, before the deadline.
    const ALONE: Gathering = Gathering {
        model_idle: true,
        nothing_arriving: true,
        short: false,
        deadline_passed: false,
    };

    #[test]
    fn adaptive_sends_a_lone_image_to_an_idle_model_at_once() {
        assert!(dispatch_now(BatchWait::Adaptive, ALONE));
        // Triton's policy waits out the delay even then.
        assert!(!dispatch_now(BatchWait::Always, ALONE));
    }

    #[test]
    fn adaptive_waits_for_a_busy_model_and_for_requests_being_read() {
        let busy = Gathering {
            model_idle: false,
            ..ALONE
        };
        let late = Gathering {
            deadline_passed: true,
            ..busy
        };
        // The model is busy: the batch would only queue, so it keeps gathering, even late.
        assert!(!dispatch_now(BatchWait::Adaptive, busy));
        assert!(!dispatch_now(BatchWait::Adaptive, late));
        // Received requests are on their way to the queue: wait for them, up to the deadline.
        let reading = Gathering {
            nothing_arriving: false,
            ..ALONE
        };
        assert!(!dispatch_now(BatchWait::Adaptive, reading));
        let reading_late = Gathering {
            deadline_passed: true,
            ..reading
        };
        assert!(dispatch_now(BatchWait::Adaptive, reading_late));
        assert!(dispatch_now(
            BatchWait::Always,
            Gathering {
                nothing_arriving: false,
                ..late
            }
        ));
    }

    #[test]
    fn adaptive_waits_for_the_clients_of_a_batch_just_answered() {
        // Short of the images the last batch had, an idle model with nothing arriving still
        // waits, up to the deadline; Always is unchanged.
        let short = Gathering {
            short: true,
            ..ALONE
        };
        assert!(!dispatch_now(BatchWait::Adaptive, short));
        let short_late = Gathering {
            deadline_passed: true,
            ..short
        };
        assert!(dispatch_now(BatchWait::Adaptive, short_late));
        assert!(!dispatch_now(BatchWait::Always, short));
        let flow = Flow::default();
        let t0 = Instant::now();
        let window = Duration::from_millis(5);
        assert_eq!(
            flow.expected(t0, window),
            1,
            "no batch yet: a lone request goes"
        );
        flow.batch_finished(32, t0);
        assert_eq!(flow.expected(t0 + Duration::from_millis(1), window), 32);
        assert_eq!(
            flow.expected(t0 + Duration::from_millis(6), window),
            1,
            "too long ago: its clients are not coming back together"
        );
        flow.batch_finished(1, t0);
        assert_eq!(
            flow.expected(t0, window),
            1,
            "one client: no company to wait for"
        );
    }

    /// A job whose answer nobody waits for (decoding does not look at the reply).
    fn job(input: Input) -> Job {
        let (reply, _) = oneshot::channel();
        Job {
            input,
            enqueued: Instant::now(),
            reply,
        }
    }

    #[test]
    fn a_batch_decodes_into_one_buffer_and_closes_the_gaps_of_images_that_fail() {
        let pre = Preprocess {
            resize: 2,
            crop: 2,
            mean: [0.0; 3],
            std: [1.0; 3],
            limits: graft_data::DecodeLimits::default(),
        };
        let (a, b) = (vec![1.0f32; 12], vec![2.0f32; 12]);
        let junk = Input::Encoded {
            bytes: b"not an image".to_vec(),
            name: "junk.png".into(),
        };
        let inputs = vec![
            Input::Pixels(a.clone()),
            junk,
            Input::Pixels(vec![0.0; 5]),
            Input::Pixels(b.clone()),
        ];
        let batch: Vec<Job> = inputs.into_iter().map(job).collect();
        let metrics = Metrics::default();
        let (pixels, ok, failed) = decode_batch(&pre, batch, 12, &metrics);
        assert_eq!(pixels, [a, b].concat());
        assert_eq!(ok.len(), 2);
        let reasons: Vec<&str> = failed.iter().map(|(_, e)| e.as_str()).collect();
        assert_eq!(reasons.len(), 2);
        assert!(reasons[0].contains("junk.png"), "{reasons:?}");
        assert!(reasons[1].contains("got 5"), "{reasons:?}");
        // Only the encoded image counts as a decode.
        assert_eq!(metrics.decode.count(), 1);
    }

    #[test]
    fn memory_is_released_only_after_batches_and_at_most_every_period() {
        let start = Instant::now();
        let mut release = Release::new(start);
        // Nothing ran: an idle backend waits for its next batch without a deadline.
        assert_eq!(release.due_in(start + 3 * RELEASE_EVERY), None);
        release.ran();
        let soon = start + Duration::from_secs(1);
        assert_eq!(
            release.due_in(soon),
            Some(RELEASE_EVERY - Duration::from_secs(1))
        );
        assert_eq!(release.due_in(start + RELEASE_EVERY), Some(Duration::ZERO));
        release.done(start + RELEASE_EVERY);
        assert_eq!(release.due_in(start + 3 * RELEASE_EVERY), None);
    }

    #[test]
    fn the_backends_waits_outlive_the_servers_runtime() {
        let server = tokio::runtime::Runtime::new().expect("a test runtime");
        let (send, mut items) = server.block_on(async { mpsc::channel::<u8>(1) });
        // The server's runtime shuts down while the backend's thread still waits on its
        // channel (the sender lives on): a timer of that runtime would panic here.
        drop(server);
        let waiter = Waiter::new();
        let short = Some(Duration::from_millis(20));
        assert_eq!(waiter.next(&mut items, short), Err(Due));
        send.try_send(7).expect("room in the channel");
        assert_eq!(waiter.next(&mut items, short), Ok(Some(7)));
        drop(send);
        assert_eq!(waiter.next(&mut items, None), Ok(None));
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
