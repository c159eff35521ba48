//! The learning-rate range test (Smith, "Cyclical Learning Rates for Training Neural Networks",
//! WACV 2017, section 3.3; fastai's `lr_find`), without tensors: the schedule of rates, the
//! smoothing of the losses, when to stop, and which rate to suggest. graft-transfer runs the
//! steps; `lr_find.json` is [`LrFind`].
//!
//! The model trains from its fresh state for `steps` mini-batches, the rate growing
//! geometrically from `start` to `end`; the loss is smoothed (an exponential moving average
//! with bias correction) and the test stops when the smoothed loss passes [`DIVERGED`] times its
//! lowest. Two readings of the curve are standard and both are given: one tenth of the rate at
//! the lowest smoothed loss (Smith's and fastai v1's rule of thumb; graft's suggestion), and the
//! rate where the smoothed loss falls fastest per decade.

use serde::{Deserialize, Serialize};

use crate::strategy::Strategy;

/// `lr_find.json`'s format number.
pub const FORMAT: u32 = 1;
pub const FILE: &str = "lr_find.json";
pub const PLOT: &str = "lr_find.svg";

/// Weight of the past in the moving average of the loss (fastai's).
pub const BETA: f64 = 0.98;
/// The test stops once the smoothed loss is this many times its lowest.
pub const DIVERGED: f64 = 4.0;
/// Points at each end that the steepest-descent reading ignores: the average has barely started
/// at the low end, and the high end is the divergence itself.
const EDGE: usize = 3;

/// Which rates the test tries.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrRange {
    pub start: f64,
    pub end: f64,
    pub steps: usize,
}

/// fastai's range: the CLI's defaults read these.
pub const START: f64 = 1e-7;
pub const END: f64 = 10.0;
pub const STEPS: usize = 100;

impl Default for LrRange {
    fn default() -> Self {
        LrRange {
            start: START,
            end: END,
            steps: STEPS,
        }
    }
}

impl LrRange {
    /// Refuses a range no test can run: rates must be positive, finite and increasing, and a
    /// curve needs a few points.
    pub fn check(&self) -> Result<(), String> {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        if !ok(self.start) || !ok(self.end) || self.start >= self.end {
            return Err(format!(
                "the learning-rate range must be positive and increasing, not {} to {}",
                self.start, self.end
            ));
        }
        if self.steps < 2 * EDGE + 2 {
            return Err(format!(
                "the range test needs at least {} steps, not {}",
                2 * EDGE + 2,
                self.steps
            ));
        }
        Ok(())
    }

    /// The rate of step `i` (0-based): `start` at 0, `end` at `steps - 1`, geometric between.
    pub fn lr(&self, i: usize) -> f64 {
        let t = i as f64 / (self.steps.max(2) - 1) as f64;
        self.start * (self.end / self.start).powf(t)
    }
}

/// One step of the test.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrPoint {
    pub lr: f64,
    /// The mini-batch's loss, before the step at `lr` was applied.
    pub loss: f64,
    pub smoothed: f64,
}

/// Why the test ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrStop {
    /// Every step of the range ran.
    Completed,
    /// The smoothed loss passed [`DIVERGED`] times its lowest, or a loss was not finite.
    Diverged,
}

/// Smooths the losses as they come and says when to stop.
#[derive(Clone, Debug)]
pub struct LrRecorder {
    range: LrRange,
    average: f64,
    best: f64,
    pub points: Vec<LrPoint>,
}

impl LrRecorder {
    pub fn new(range: LrRange) -> Self {
        LrRecorder {
            range,
            average: 0.0,
            best: f64::INFINITY,
            points: Vec::new(),
        }
    }

    /// The rate of the next step, or `None` when the range is done.
    pub fn next_lr(&self) -> Option<f64> {
        (self.points.len() < self.range.steps).then(|| self.range.lr(self.points.len()))
    }

    /// Records the loss of the step at `lr`; returns whether the test must stop here (the loss
    /// diverged). A non-finite loss is not recorded.
    pub fn record(&mut self, lr: f64, loss: f64) -> bool {
        if !loss.is_finite() {
            return true;
        }
        self.average = BETA * self.average + (1.0 - BETA) * loss;
        let smoothed = self.average / (1.0 - BETA.powi(self.points.len() as i32 + 1));
        self.points.push(LrPoint { lr, loss, smoothed });
        self.best = self.best.min(smoothed);
        smoothed > DIVERGED * self.best
    }
}

/// The readings of a curve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrSuggestion {
    /// One tenth of the rate at the lowest smoothed loss: graft's suggestion.
    pub suggested: f64,
    /// The rate at the lowest smoothed loss.
    pub minimum: f64,
    /// Where the smoothed loss falls fastest per decade of rate (`None` when it never falls).
    pub steepest: Option<f64>,
    /// Whether the loss turned up within the range: `false` when the lowest point is among the
    /// last few (the loss was still falling at the end, so the rate that is too high was not
    /// found and the suggestion is only a bound from below).
    pub bounded: bool,
}

/// Reads `points` (in order of increasing rate); `None` for a curve too short to read.
pub fn suggest(points: &[LrPoint]) -> Option<LrSuggestion> {
    if points.len() < 2 * EDGE + 2 {
        return None;
    }
    // The lowest point before divergence: the last points are the climb that stopped the test.
    let (min_at, _) = points
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.smoothed.total_cmp(&b.1.smoothed))?;
    let minimum = points[min_at].lr;
    // Central differences of the smoothed loss against log10(rate), inside the edges.
    let slope = |i: usize| {
        let (a, b) = (&points[i - 1], &points[i + 1]);
        (b.smoothed - a.smoothed) / (b.lr.log10() - a.lr.log10())
    };
    let steepest = (EDGE..points.len() - EDGE)
        .map(|i| (i, slope(i)))
        .filter(|(_, s)| s.is_finite() && *s < 0.0)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| points[i].lr);
    Some(LrSuggestion {
        suggested: minimum / 10.0,
        minimum,
        steepest,
        bounded: min_at + EDGE < points.len(),
    })
}

/// `lr_find.json`: the test's settings, its curve and its readings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrFind {
    pub format: u32,
    pub graft_version: String,
    pub model: String,
    pub data: std::path::PathBuf,
    pub strategy: Strategy,
    /// The rate swept is the one `--lr` sets: the new head's; trained backbone groups learn at
    /// `backbone_lr_scale` times it.
    pub backbone_lr_scale: f64,
    pub range: LrRange,
    pub batch_size: usize,
    /// Training images the batches were drawn from (the selection and reported splits are not
    /// read).
    pub train_images: usize,
    pub stopped: LrStop,
    pub points: Vec<LrPoint>,
    pub suggestion: Option<LrSuggestion>,
    pub seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A curve shaped like a real one: flat, a fall over two decades, a climb.
    fn curve(range: LrRange) -> Vec<LrPoint> {
        let mut r = LrRecorder::new(range);
        while let Some(lr) = r.next_lr() {
            let x = lr.log10();
            let loss = if x < -4.0 {
                2.3
            } else if x < -2.0 {
                2.3 - 1.0 * (x + 4.0)
            } else {
                0.3 + 8.0 * (x + 2.0).powi(2)
            };
            if r.record(lr, loss) {
                break;
            }
        }
        r.points
    }

    #[test]
    fn the_range_is_geometric_from_start_to_end() {
        let r = LrRange::default();
        assert!((r.lr(0) - 1e-7).abs() < 1e-20);
        assert!((r.lr(99) - 10.0).abs() < 1e-9);
        assert!((r.lr(1) / r.lr(0) - r.lr(51) / r.lr(50)).abs() < 1e-9);
    }

    #[test]
    fn a_diverging_loss_stops_the_test_and_the_suggestion_is_below_the_minimum() {
        let points = curve(LrRange::default());
        assert!(points.len() < 100, "stopped at {}", points.len());
        let s = suggest(&points).expect("a readable curve");
        // The fall ends at 1e-2 and the average lags a little behind it.
        assert!((1e-3..=1e-1).contains(&s.minimum), "{s:?}");
        assert!((s.suggested - s.minimum / 10.0).abs() < 1e-15);
        let steepest = s.steepest.expect("the loss falls");
        assert!((1e-4..=s.minimum).contains(&steepest), "{s:?}");
        assert!(s.bounded);
    }

    #[test]
    fn a_loss_still_falling_at_the_end_of_the_range_is_not_bounded() {
        let range = LrRange::default();
        let points: Vec<LrPoint> = (0..range.steps)
            .map(|i| {
                let loss = 1.0 / (1.0 + i as f64);
                LrPoint {
                    lr: range.lr(i),
                    loss,
                    smoothed: loss,
                }
            })
            .collect();
        let s = suggest(&points).expect("a readable curve");
        assert!(!s.bounded);
        assert!((s.minimum - range.end).abs() < 1e-9);
    }

    #[test]
    fn a_non_finite_loss_stops_without_being_recorded() {
        let mut r = LrRecorder::new(LrRange::default());
        assert!(!r.record(1e-7, 2.0));
        assert!(r.record(1e-6, f64::NAN));
        assert_eq!(r.points.len(), 1);
    }

    #[test]
    fn a_flat_curve_has_no_steepest_point_and_a_short_one_no_reading() {
        let flat: Vec<LrPoint> = (0..20)
            .map(|i| LrPoint {
                lr: LrRange::default().lr(i),
                loss: 1.0,
                smoothed: 1.0,
            })
            .collect();
        assert_eq!(suggest(&flat).and_then(|s| s.steepest), None);
        assert_eq!(suggest(&flat[..4]), None);
    }

    #[test]
    fn ranges_that_cannot_run_are_refused() {
        let bad = |start, end, steps| LrRange { start, end, steps }.check().is_err();
        assert!(bad(1e-3, 1e-5, 100));
        assert!(bad(0.0, 1.0, 100));
        assert!(bad(1e-7, f64::INFINITY, 100));
        assert!(bad(1e-7, 10.0, 3));
        assert!(LrRange::default().check().is_ok());
    }
}
