//! One row per strategy and the plain-language conclusion drawn from the rows: pure functions
//! over numbers, tested without files.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Failed,
    /// Not run (yet): the compare was interrupted before it.
    Pending,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Row {
    pub strategy: String,
    pub status: Status,
    pub error: Option<String>,
    pub trainable_params: usize,
    /// Wall-clock seconds of the whole run (frozen features, training, saving).
    pub seconds: f64,
    pub train_seconds: f64,
    /// Training images processed per second of training.
    pub images_per_s: f64,
    pub val_accuracy: f64,
    pub val_top5: Option<f64>,
    pub macro_f1: f64,
    pub best_epoch: usize,
    pub epochs_run: usize,
    /// completed, early_stopped or time_budget.
    pub stopped: String,
    /// The accuracy on the split decisions were taken on, and its name (`None`: a run from
    /// before the protocol, which chose on the reported split).
    #[serde(default)]
    pub select_accuracy: Option<f64>,
    #[serde(default)]
    pub select_split: Option<String>,
    /// How many images the selection split has (their noise).
    #[serde(default)]
    pub select_images: Option<usize>,
    /// The name of the split `val_accuracy` is measured on.
    #[serde(default)]
    pub val_split: String,
}

impl Row {
    pub fn failed(strategy: &str, error: String) -> Self {
        Self {
            strategy: strategy.to_string(),
            status: Status::Failed,
            error: Some(error),
            trainable_params: 0,
            seconds: 0.0,
            train_seconds: 0.0,
            images_per_s: 0.0,
            val_accuracy: 0.0,
            val_top5: None,
            macro_f1: 0.0,
            best_epoch: 0,
            epochs_run: 0,
            stopped: String::new(),
            select_accuracy: None,
            select_split: None,
            select_images: None,
            val_split: String::new(),
        }
    }

    /// The training rate as the tables show it: a dash for a strategy that trained nothing
    /// (`pretrained`), whose rate would read as a very slow 0.0.
    pub fn training_rate(&self) -> String {
        if self.epochs_run == 0 {
            "–".to_string()
        } else {
            format!("{:.1}", self.images_per_s)
        }
    }

    /// The figure strategies are ranked by: the selection split's, never the reported one's
    /// (unless the run predates the protocol).
    pub fn chosen_on(&self) -> f64 {
        self.select_accuracy.unwrap_or(self.val_accuracy)
    }

    /// From a run's `result.json`.
    pub fn from_result(strategy: &str, v: &graft_spec::RunResult) -> Self {
        Self {
            strategy: strategy.to_string(),
            status: Status::Ok,
            error: None,
            trainable_params: v.trainable_params,
            seconds: v.seconds,
            train_seconds: v.train_seconds,
            images_per_s: v.images_per_s,
            val_accuracy: v.val_accuracy,
            val_top5: v.val_top5,
            macro_f1: v.macro_f1,
            best_epoch: v.best_epoch,
            epochs_run: v.epochs_run,
            stopped: serde_json::to_value(v.stopped)
                .ok()
                .and_then(|s| s.as_str().map(str::to_string))
                .unwrap_or_default(),
            select_accuracy: v.selection.as_ref().map(|s| s.accuracy),
            select_split: v.selection.as_ref().map(|s| s.split.clone()),
            select_images: v.selection.as_ref().map(|s| s.images),
            val_split: v.val_split.clone(),
        }
    }
}

/// The most accurate successful row on the selection split; ties go to the faster.
pub fn best_row(rows: &[Row]) -> Option<&Row> {
    rows.iter()
        .filter(|r| r.status == Status::Ok)
        .fold(None, |best: Option<&Row>, r| match best {
            Some(b)
                if b.chosen_on() > r.chosen_on()
                    || (b.chosen_on() == r.chosen_on() && b.seconds <= r.seconds) =>
            {
                Some(b)
            }
            _ => Some(r),
        })
}

pub fn seconds(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

fn pct(a: f64) -> String {
    format!("{:.1}%", 100.0 * a)
}

fn times(a: f64, b: f64) -> String {
    let r = a / b.max(1e-9);
    if r >= 10.0 {
        format!("{r:.0}x")
    } else {
        format!("{r:.1}x")
    }
}

/// "head reaches 95.4% in 6.0 s; partial:2 adds 0.7 points for 40x the time", and what else the
/// rows say (pretrained without training, scratch, runs cut by the budget, failures).
/// The first sentence: the reference strategy (head, the cheap one everyone should try first)
/// and what the best trained strategy adds to it, or how close the runner-up comes.
fn headline(ok: &[&Row], reference: &Row, best_trained: &Row) -> String {
    let mut s = format!(
        "{} reaches {} in {}",
        reference.strategy,
        pct(reference.chosen_on()),
        seconds(reference.seconds)
    );
    if best_trained.strategy != reference.strategy
        && best_trained.chosen_on() > reference.chosen_on()
    {
        s += &format!(
            "; {} adds {:.1} points for {} the time",
            best_trained.strategy,
            100.0 * (best_trained.chosen_on() - reference.chosen_on()),
            times(best_trained.seconds, reference.seconds)
        );
    } else if let Some(next) = ok
        .iter()
        .filter(|r| r.strategy != reference.strategy && r.strategy != "pretrained")
        .max_by(|a, b| a.chosen_on().total_cmp(&b.chosen_on()))
    {
        let d = 100.0 * (reference.chosen_on() - next.chosen_on());
        s += &format!(
            "; nothing trained beats it: the closest, {}, {} for {} the time",
            next.strategy,
            if d == 0.0 {
                "ties".to_string()
            } else {
                format!("is {d:.1} points behind")
            },
            times(next.seconds, reference.seconds)
        );
    }
    s + "."
}

/// What pretrained (no training) and scratch (no transfer) say about the pretrained weights,
/// and which runs the time budget cut short.
fn asides(ok: &[&Row], best: &Row) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = ok.iter().find(|r| r.strategy == "pretrained") {
        out.push(format!(
            "With no training at all, the ImageNet classifier mapped onto your classes gets {}{}.",
            pct(p.chosen_on()),
            if best.strategy == "pretrained" {
                ", the best of all"
            } else {
                ""
            }
        ));
    }
    if let Some(s) = ok.iter().find(|r| r.strategy == "scratch")
        && s.chosen_on() < best.chosen_on()
    {
        out.push(format!(
            "From scratch, the same network reaches {} in {}: the pretrained weights are worth {:.1} points here.",
            pct(s.chosen_on()),
            seconds(s.seconds),
            100.0 * (best.chosen_on() - s.chosen_on())
        ));
    }
    let cut: Vec<&str> = ok
        .iter()
        .filter(|r| r.stopped == "time_budget")
        .map(|r| r.strategy.as_str())
        .collect();
    if !cut.is_empty() {
        out.push(format!(
            "{} stopped at the time budget; a larger budget may raise {}.",
            cut.join(", "),
            if cut.len() == 1 {
                "its accuracy"
            } else {
                "theirs"
            }
        ));
    }
    out
}

/// Which strategies the selection split cannot tell from the best: within one standard error
/// of the difference (`graft_spec::selection_noise`) on its images.
fn level_with_best(ok: &[&Row], best: &Row) -> Option<String> {
    let n = best.select_images?;
    let split = best.select_split.as_deref()?;
    let level: Vec<(&str, f64)> = ok
        .iter()
        .filter(|r| r.strategy != best.strategy)
        .filter_map(|r| {
            let noise = graft_spec::selection_noise(best.chosen_on(), r.chosen_on(), n);
            (best.chosen_on() - r.chosen_on() < noise).then_some((r.strategy.as_str(), noise))
        })
        .collect();
    if level.is_empty() {
        return None;
    }
    let widest = level.iter().map(|l| l.1).fold(0.0, f64::max);
    let names: Vec<&str> = level.iter().map(|l| l.0).collect();
    Some(format!(
        "On the {n} {split} images a difference under {:.1} points is noise, so {} {} level with {}: the ranking among them is not conclusive.",
        100.0 * widest,
        names.join(", "),
        if names.len() == 1 { "is" } else { "are" },
        best.strategy
    ))
}

/// Where the figures above come from, and the chosen strategies' figures on the reported
/// split, which no decision read.
fn held_out(best: &Row, reference: &Row) -> Option<String> {
    let select = best.select_split.as_deref()?;
    if select == best.val_split {
        return Some(format!(
            "These figures are on {select}, the split they are reported on (--select-on-eval): they are optimistic."
        ));
    }
    let mut s = format!(
        "These figures are on {select}, where the choice is made; on {}, which no decision read, {} gets {}",
        best.val_split,
        best.strategy,
        pct(best.val_accuracy)
    );
    if reference.strategy != best.strategy {
        s += &format!(
            " and {} {}",
            reference.strategy,
            pct(reference.val_accuracy)
        );
    }
    Some(s + ".")
}

fn advice(best: &Row, best_trained: &Row, reference: &Row) -> String {
    if best.strategy == reference.strategy {
        format!("Pick {}.", best.strategy)
    } else if best.strategy == "pretrained" && best_trained.strategy != reference.strategy {
        format!(
            "Pick pretrained (no training); of the trained strategies, {} for accuracy, {} when time matters.",
            best_trained.strategy, reference.strategy
        )
    } else {
        format!(
            "Pick {} for accuracy, {} when time matters.",
            best.strategy, reference.strategy
        )
    }
}

pub fn conclusion(rows: &[Row]) -> String {
    let ok: Vec<&Row> = rows.iter().filter(|r| r.status == Status::Ok).collect();
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| r.status == Status::Failed)
        .map(|r| {
            format!(
                "{} failed ({})",
                r.strategy,
                r.error.as_deref().unwrap_or("no reason given")
            )
        })
        .collect();
    let Some(best) = best_row(rows) else {
        return if failed.is_empty() {
            "No strategy ran.".to_string()
        } else {
            format!("No strategy finished: {}.", failed.join("; "))
        };
    };
    // The reference is the cheap strategy everyone should try first.
    let reference = ok
        .iter()
        .find(|r| r.strategy == "head")
        .or_else(|| {
            ok.iter()
                .filter(|r| r.strategy != "pretrained")
                .min_by(|a, b| a.seconds.total_cmp(&b.seconds))
        })
        .copied()
        .unwrap_or(best);
    // The best of the trained strategies (pretrained trains nothing and is told apart).
    let best_trained = ok
        .iter()
        .filter(|r| r.strategy != "pretrained")
        .fold(None, |b: Option<&&Row>, r| match b {
            Some(b) if b.chosen_on() >= r.chosen_on() => Some(b),
            _ => Some(r),
        })
        .copied()
        .unwrap_or(reference);
    let mut out = vec![headline(&ok, reference, best_trained)];
    out.extend(asides(&ok, best));
    out.extend(level_with_best(&ok, best));
    out.extend(held_out(best, reference));
    if !failed.is_empty() {
        out.push(format!("{}.", failed.join("; ")));
    }
    out.push(advice(best, best_trained, reference));
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(strategy: &str, acc: f64, seconds: f64) -> Row {
        Row {
            status: Status::Ok,
            error: None,
            val_accuracy: acc,
            seconds,
            stopped: "completed".into(),
            ..Row::failed(strategy, String::new())
        }
    }

    #[test]
    fn a_strategy_that_trained_nothing_has_no_training_rate() {
        let pretrained = row("pretrained", 0.974, 0.1);
        assert_eq!(pretrained.training_rate(), "–");
        let head = Row {
            epochs_run: 15,
            images_per_s: 65928.84,
            ..row("head", 0.954, 0.1)
        };
        assert_eq!(head.training_rate(), "65928.8");
    }

    #[test]
    fn the_conclusion_weighs_accuracy_against_time_from_head() {
        let rows = vec![row("head", 0.954, 6.0), row("partial:2", 0.961, 240.0)];
        let c = conclusion(&rows);
        assert!(
            c.starts_with(
                "head reaches 95.4% in 6.0 s; partial:2 adds 0.7 points for 40x the time."
            ),
            "{c}"
        );
        assert!(
            c.ends_with("Pick partial:2 for accuracy, head when time matters."),
            "{c}"
        );
    }

    #[test]
    fn when_head_is_best_the_conclusion_names_the_closest_alternative() {
        let mut scratch = row("scratch", 0.6, 600.0);
        scratch.stopped = "time_budget".into();
        let rows = vec![
            row("pretrained", 0.97, 3.0),
            row("head", 0.95, 6.0),
            row("partial:1", 0.94, 30.0),
            scratch,
            Row::failed("partial:4", "out of memory".into()),
        ];
        let c = conclusion(&rows);
        assert!(
            c.contains("the closest, partial:1, is 1.0 points behind for 5.0x the time"),
            "{c}"
        );
        assert!(
            c.contains("ImageNet classifier mapped onto your classes gets 97.0%, the best of all"),
            "{c}"
        );
        assert!(
            c.contains("From scratch, the same network reaches 60.0% in 10.0 min"),
            "{c}"
        );
        assert!(c.contains("scratch stopped at the time budget"), "{c}");
        assert!(c.contains("partial:4 failed (out of memory)"), "{c}");
    }

    #[test]
    fn a_trained_strategy_that_beats_head_is_named_even_when_pretrained_is_best() {
        let rows = vec![
            row("pretrained", 0.974, 7.4),
            row("head", 0.948, 11.8),
            row("partial:1", 0.967, 44.7),
        ];
        let c = conclusion(&rows);
        assert!(
            c.starts_with(
                "head reaches 94.8% in 11.8 s; partial:1 adds 1.9 points for 3.8x the time."
            ),
            "{c}"
        );
        assert!(c.ends_with("Pick pretrained (no training); of the trained strategies, partial:1 for accuracy, head when time matters."), "{c}");
    }

    #[test]
    fn strategies_are_ranked_on_the_selection_split_never_the_reported_one() {
        let on = |strategy: &str, select: f64, report: f64| Row {
            select_accuracy: Some(select),
            select_split: Some("select".into()),
            val_split: "test".into(),
            ..row(strategy, report, 10.0)
        };
        // partial:1 looks better on test, but the choice reads only the selection split.
        let rows = vec![on("head", 0.95, 0.90), on("partial:1", 0.93, 0.99)];
        assert_eq!(best_row(&rows).map(|r| r.strategy.as_str()), Some("head"));
        let c = conclusion(&rows);
        assert!(c.starts_with("head reaches 95.0% in 10.0 s"), "{c}");
        assert!(
            c.contains("These figures are on select, where the choice is made; on test, which no decision read, head gets 90.0%."),
            "{c}"
        );
    }

    #[test]
    fn strategies_within_the_selection_splits_noise_of_the_best_are_called_level() {
        let on = |strategy: &str, select: f64, n: usize| Row {
            select_accuracy: Some(select),
            select_split: Some("select".into()),
            select_images: Some(n),
            val_split: "val".into(),
            ..row(strategy, 0.9, 10.0)
        };
        // hymenoptera's 37 selection images: 97.3% against 94.6% is one image each way of noise.
        let rows = vec![
            on("head", 0.946, 37),
            on("partial:1", 0.973, 37),
            on("scratch", 0.622, 37),
        ];
        let c = conclusion(&rows);
        assert!(
            c.contains("On the 37 select images a difference under 4.6 points is noise, so head is level with partial:1: the ranking among them is not conclusive."),
            "{c}"
        );
        // 1000 images tell 97.3% from 94.6% apart.
        let rows = vec![on("head", 0.946, 1000), on("partial:1", 0.973, 1000)];
        assert!(!conclusion(&rows).contains("noise"));
    }

    #[test]
    fn ties_go_to_the_faster_strategy_and_failures_are_never_best() {
        let rows = vec![
            row("partial:1", 0.9, 30.0),
            row("head", 0.9, 6.0),
            Row {
                val_accuracy: 1.0,
                ..Row::failed("scratch", "x".into())
            },
        ];
        assert_eq!(best_row(&rows).map(|r| r.strategy.as_str()), Some("head"));
        assert_eq!(
            conclusion(&[Row::failed("head", "boom".into())]),
            "No strategy finished: head failed (boom)."
        );
    }
}
