//! Prometheus metrics, kept by hand: counters by status, latency histograms per stage, the
//! batch-size histogram and the queue depth, rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A histogram with fixed upper bounds (cumulative when rendered).
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// The sum of observations, in millionths (integers add atomically).
    sum_micro: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| v <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micro
            .fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count();
        let sum = self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
        );
    }
}

const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    pub queue: Histogram,
    pub decode: Histogram,
    pub inference: Histogram,
    pub total: Histogram,
    pub batch_size: Histogram,
    pub queue_depth: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Mutex::new(BTreeMap::new()),
            queue: Histogram::new(SECONDS),
            decode: Histogram::new(SECONDS),
            inference: Histogram::new(SECONDS),
            total: Histogram::new(SECONDS),
            batch_size: Histogram::new(SIZES),
            queue_depth: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn request(&self, route: &str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route.to_string(), status)).or_default() += 1;
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP graft_requests_total HTTP requests by route and status.\n# TYPE graft_requests_total counter\n",
        );
        if let Ok(m) = self.requests.lock() {
            for ((route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "graft_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        self.queue.render(
            &mut out,
            "graft_queue_seconds",
            "Time an image waited for a batch.",
        );
        self.decode.render(
            &mut out,
            "graft_decode_seconds",
            "Time to decode and preprocess an image.",
        );
        self.inference.render(
            &mut out,
            "graft_inference_seconds",
            "Time of one batch's forward pass.",
        );
        self.total.render(
            &mut out,
            "graft_request_seconds",
            "Time from request to answer.",
        );
        self.batch_size
            .render(&mut out, "graft_batch_size", "Images per forward pass.");
        let depth = self.queue_depth.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP graft_queue_depth Images waiting for a batch.\n# TYPE graft_queue_depth gauge\ngraft_queue_depth {depth}"
        );
        // The name and unit of Prometheus's process collector, which dashboards and alerts for
        // any server already use; left out where the system does not report it.
        if let Some(bytes) = graft_models::resident_memory_bytes() {
            let _ = writeln!(
                out,
                "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {bytes}"
            );
        }
        out
    }
}
