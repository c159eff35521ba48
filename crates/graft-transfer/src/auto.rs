//! `graft auto`'s choice of strategy: plain data in, a strategy and its explanation out. The
//! rules follow the usual transfer-learning advice (cs231n's "transfer learning" notes, Yosinski
//! et al. 2014): little data -> keep the pretrained features; features that fit -> train a head;
//! features whose top groups lose accuracy, or plenty of data -> fine-tune the top groups.

use graft_spec::{ProbeGroup, Recommendation, Strategy, selection_noise as noise};

/// The probe's suggestion from its curve (accuracy of a linear classifier on each group's
/// pooled output, Yosinski et al. 2014).
/// Points of accuracy within which a deeper group counts as "as good" (probe noise on a few
/// hundred validation images is about that).
const TOLERANCE: f64 = 0.01;

/// If the last group is (within a point) the best, every group transfers: `head`. Otherwise the
/// groups after the peak are too specific to ImageNet for these classes: retrain them
/// (`partial:N`, N = groups after the peak).
pub fn recommend(groups: &[ProbeGroup]) -> Option<Recommendation> {
    let last = groups.last()?;
    let (k, peak) = groups
        .iter()
        .enumerate()
        .fold((0, &groups[0]), |b, (i, g)| {
            if g.val_accuracy > b.1.val_accuracy {
                (i, g)
            } else {
                b
            }
        });
    let n = groups.len();
    if last.val_accuracy + TOLERANCE >= peak.val_accuracy {
        return Some(Recommendation {
            strategy: Strategy::Head,
            freeze_after: last.group.clone(),
            reason: format!(
                "the last group is as accurate as any, within a point ({} gives {:.1}%, the best group {:.1}%): \
                 ImageNet's most specific features still separate your classes, so freeze every group and train a new classifier.",
                last.group,
                100.0 * last.val_accuracy,
                100.0 * peak.val_accuracy
            ),
        });
    }
    let retrain = n - 1 - k;
    Some(Recommendation {
        strategy: Strategy::Partial(retrain),
        freeze_after: peak.group.clone(),
        reason: format!(
            "accuracy peaks at {} ({:.1}%) and falls to {:.1}% by {}: the {} group(s) above {} are too specific to ImageNet for your classes, \
             so keep {} and below frozen and retrain the {retrain} group(s) above it with the new classifier.",
            peak.group,
            100.0 * peak.val_accuracy,
            100.0 * last.val_accuracy,
            last.group,
            retrain,
            peak.group,
            peak.group
        ),
    })
}

/// What `auto` knows when it decides.
#[derive(Clone, Debug, PartialEq)]
pub struct Evidence {
    pub train_images: usize,
    pub classes: usize,
    /// Block groups of the backbone.
    pub groups: usize,
    /// The probe's suggestion: groups to retrain above its accuracy peak (0: none, the curve
    /// rises to the top).
    pub probe_retrain: usize,
    /// Selection-split accuracy of a new head on the frozen backbone (the probe's last point).
    pub head_accuracy: f64,
    /// Images in the selection split the accuracies are measured on (their noise).
    pub select_images: usize,
    /// The fine-tuning candidate ([`candidate`]) trained in full, and its selection-split
    /// accuracy, when one was trained ([`wants_trial`]).
    pub trial: Option<(Strategy, f64)>,
}

/// The fine-tuning candidate `auto` trains in full when the head alone does not settle it:
/// the groups the probe says to retrain, at least the top one and at most half the network.
pub fn candidate(probe_retrain: usize, groups: usize) -> Strategy {
    Strategy::Partial(probe_retrain.clamp(1, (groups / 2).max(1)))
}

/// Whether a fine-tuning trial can change the decision: not when the head is already good
/// enough or when there are too few images to fine-tune.
pub fn wants_trial(train_images: usize, classes: usize, head_accuracy: f64) -> bool {
    head_accuracy < GOOD_ENOUGH && train_images / classes.max(1) >= FEW_PER_CLASS
}

/// The thresholds, in one place.
pub const FEW_PER_CLASS: usize = 50;
pub const MANY_PER_CLASS: usize = 1000;
/// A head this accurate leaves little for fine-tuning to win.
pub const GOOD_ENOUGH: f64 = 0.97;

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub strategy: Strategy,
    /// Which rule fired (for tests and the JSON output).
    pub rule: &'static str,
    /// One paragraph for a newcomer.
    pub explanation: String,
}

/// The measured comparison, where a candidate was trained. Fine-tuning from pretrained weights
/// matches or beats a head on frozen features on nearly every dataset with enough images
/// (Kornblith et al. 2019, "Do Better ImageNet Models Transfer Better?"), and the candidate is
/// already trained (auto keeps it rather than training it again), so the head needs clear
/// evidence: better by more than the selection split's noise.
fn measured(e: &Evidence, trial: Strategy, acc: f64) -> (Strategy, &'static str, String) {
    let margin = noise(e.head_accuracy, acc, e.select_images);
    let figures = format!(
        "Fine-tuning (strategy `{trial}`, trained in full) reached {:.1}% on the same images; \
         on {} images a difference under {:.1} points is noise.",
        100.0 * acc,
        e.select_images,
        100.0 * margin
    );
    if e.head_accuracy > acc + margin {
        (
            Strategy::Head,
            "head_measured",
            format!(
                "{figures} The head is clearly better, so graft keeps the pretrained layers frozen (strategy `head`)."
            ),
        )
    } else {
        (
            trial,
            "fine_tune_measured",
            format!(
                "{figures} The head is not clearly better, and fine-tuning from pretrained weights is \
                 usually at least as good with this much data, so graft keeps the fine-tuned model (strategy `{trial}`)."
            ),
        )
    }
}

pub fn decide(e: &Evidence) -> Decision {
    let per_class = e.train_images / e.classes.max(1);
    let facts = format!(
        "Your dataset has {} training images in {} classes (about {per_class} per class). \
         A new classifier on the frozen pretrained network reached {:.1}% on the images set apart to decide on.",
        e.train_images,
        e.classes,
        100.0 * e.head_accuracy
    );
    let half = (e.groups / 2).max(1);
    let (strategy, rule, why) = if e.head_accuracy >= GOOD_ENOUGH {
        (
            Strategy::Head,
            "head_good_enough",
            "That is already close to perfect, so fine-tuning has little room to help and would cost 10 to 100 times the time: graft trains the head (strategy `head`).".to_string(),
        )
    } else if per_class < FEW_PER_CLASS {
        (
            Strategy::Head,
            "few_images",
            format!(
                "With fewer than {FEW_PER_CLASS} images per class, changing the pretrained layers would mostly memorise the training images, so graft keeps them frozen and trains only a new classifier (strategy `head`)."
            ),
        )
    } else if let Some((trial, acc)) = e.trial {
        measured(e, trial, acc)
    } else if e.probe_retrain > 0 {
        // Without a measured candidate (a caller that skipped the trial), the probe and the
        // amount of data decide.
        let n = e.probe_retrain.min(half);
        (
            Strategy::Partial(n),
            "probe_peak",
            format!(
                "The probe found that the top {} block group(s) make the features worse for your classes (accuracy by depth peaks below the top), so graft retrains the top {n} group(s) together with a new classifier (strategy `partial:{n}`), starting from the pretrained weights.",
                e.probe_retrain
            ),
        )
    } else if per_class >= MANY_PER_CLASS {
        (
            Strategy::Partial(2.min(e.groups)),
            "many_images",
            format!(
                "With {MANY_PER_CLASS} or more images per class there is enough data to adapt the top of the network as well, so graft fine-tunes the top 2 block groups with a new classifier (strategy `partial:2`)."
            ),
        )
    } else {
        (
            Strategy::Head,
            "features_fit",
            "The probe finds the last block group as accurate as any, so the pretrained features suit your classes; graft trains the head (strategy `head`), the cheapest to train and to run. Run `graft compare` to measure every alternative.".to_string(),
        )
    };
    Decision {
        strategy,
        rule,
        explanation: format!("{facts} {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(train_images: usize, head_accuracy: f64, probe_retrain: usize) -> Evidence {
        Evidence {
            train_images,
            classes: 10,
            groups: 9,
            probe_retrain,
            head_accuracy,
            select_images: 300,
            trial: None,
        }
    }

    #[test]
    fn each_rule_fires_where_it_should() {
        let rule = |e: Evidence| decide(&e).rule;
        assert_eq!(rule(evidence(20_000, 0.98, 3)), "head_good_enough");
        assert_eq!(rule(evidence(300, 0.7, 3)), "few_images");
        assert_eq!(rule(evidence(2000, 0.8, 3)), "probe_peak");
        assert_eq!(rule(evidence(20_000, 0.8, 0)), "many_images");
        assert_eq!(rule(evidence(2000, 0.9, 0)), "features_fit");
    }

    #[test]
    fn a_trained_candidate_is_kept_unless_the_head_is_better_by_more_than_the_noise() {
        let trial = |head, acc| Evidence {
            trial: Some((Strategy::Partial(1), acc)),
            ..evidence(2000, head, 0)
        };
        // 300 images at 90%: the noise is about 2.4 points.
        let n = noise(0.9, 0.9, 300);
        assert!((n - 0.0245).abs() < 1e-3, "{n}");
        let d = decide(&trial(0.9, 0.92));
        assert_eq!(
            (d.strategy, d.rule),
            (Strategy::Partial(1), "fine_tune_measured")
        );
        // A little below the head, within the noise: still the fine-tuned model.
        let d = decide(&trial(0.9, 0.89));
        assert_eq!(
            (d.strategy, d.rule),
            (Strategy::Partial(1), "fine_tune_measured")
        );
        assert!(d.explanation.contains("89.0%"), "{}", d.explanation);
        // Clearly below: the head.
        let d = decide(&trial(0.9, 0.85));
        assert_eq!((d.strategy, d.rule), (Strategy::Head, "head_measured"));
        // The measured candidate overrides the probe's unmeasured suggestion.
        let e = Evidence {
            trial: Some((Strategy::Partial(3), 0.7)),
            ..evidence(2000, 0.9, 3)
        };
        assert_eq!(decide(&e).strategy, Strategy::Head);
    }

    #[test]
    fn noise_shrinks_with_more_images_and_never_goes_below_one_image() {
        assert!(noise(0.8, 0.8, 100) > noise(0.8, 0.8, 1000));
        assert_eq!(noise(1.0, 1.0, 50), 1.0 / 50.0);
        assert_eq!(noise(1.0, 1.0, 0), 1.0);
    }

    #[test]
    fn a_trial_is_run_only_where_it_can_change_the_choice() {
        assert!(wants_trial(2000, 10, 0.9));
        assert!(!wants_trial(2000, 10, 0.98), "head already good enough");
        assert!(!wants_trial(300, 10, 0.9), "too few images to fine-tune");
    }

    #[test]
    fn the_candidate_retrains_what_the_probe_says_at_least_one_group_at_most_half() {
        assert_eq!(candidate(0, 9), Strategy::Partial(1));
        assert_eq!(candidate(2, 9), Strategy::Partial(2));
        assert_eq!(candidate(8, 9), Strategy::Partial(4));
        assert_eq!(candidate(0, 1), Strategy::Partial(1));
    }

    #[test]
    fn the_probe_sets_how_many_groups_are_retrained_up_to_half_the_network() {
        assert_eq!(
            decide(&evidence(2000, 0.8, 2)).strategy,
            Strategy::Partial(2)
        );
        assert_eq!(
            decide(&evidence(2000, 0.8, 8)).strategy,
            Strategy::Partial(4)
        );
    }

    #[test]
    fn the_explanation_states_the_facts_and_names_the_strategy() {
        let d = decide(&evidence(245, 0.948, 0));
        assert!(
            d.explanation.contains("245 training images in 10 classes"),
            "{}",
            d.explanation
        );
        assert!(d.explanation.contains("94.8%"), "{}", d.explanation);
        assert!(d.explanation.contains("`head`"), "{}", d.explanation);
    }
}

#[cfg(test)]
mod recommend_tests {
    use super::*;

    fn curve(acc: &[f64]) -> Vec<ProbeGroup> {
        acc.iter()
            .enumerate()
            .map(|(i, &a)| ProbeGroup {
                group: format!("g{i}"),
                dim: 8,
                val_accuracy: a,
            })
            .collect()
    }

    #[test]
    fn a_curve_rising_to_the_last_group_recommends_head() {
        let r = recommend(&curve(&[0.6, 0.7, 0.85, 0.95])).map(|r| r.strategy);
        assert_eq!(r, Some(Strategy::Head));
        // Within a point of the peak still counts as the top.
        let r = recommend(&curve(&[0.6, 0.955, 0.95])).map(|r| r.strategy);
        assert_eq!(r, Some(Strategy::Head));
        // A dip before a top that ties the best (hymenoptera's Lite0 probe): head, and the
        // reason does not say the curve keeps rising.
        let r = recommend(&curve(&[0.6, 0.946, 0.919, 0.946]));
        assert_eq!(r.as_ref().map(|r| r.strategy), Some(Strategy::Head));
        let reason = r.map(|r| r.reason).unwrap_or_default();
        assert!(reason.contains("as accurate as any"), "{reason}");
        assert!(!reason.contains("rising"), "{reason}");
    }

    #[test]
    fn a_curve_that_falls_after_a_peak_retrains_the_groups_above_it() {
        let r = recommend(&curve(&[0.6, 0.8, 0.9, 0.84, 0.8]));
        assert_eq!(r.as_ref().map(|r| r.strategy), Some(Strategy::Partial(2)));
        assert_eq!(r.as_ref().map(|r| r.freeze_after.as_str()), Some("g2"));
        let reason = r.map(|r| r.reason).unwrap_or_default();
        assert!(reason.contains("peaks at g2 (90.0%)"), "{reason}");
        assert!(recommend(&[]).is_none());
    }
}
