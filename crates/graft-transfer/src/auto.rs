//! `graft auto`'s choice of strategy: plain data in, a strategy and its explanation out. The
//! rules follow the usual transfer-learning advice (cs231n's "transfer learning" notes, Yosinski
//! et al. 2014): little data -> keep the pretrained features; features that fit -> train a head;
//! features whose top groups lose accuracy, or plenty of data -> fine-tune the top groups.

use crate::strategy::Strategy;

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
    /// The short trial: validation accuracy of a new head on the frozen backbone (the probe's
    /// last point).
    pub head_accuracy: f64,
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

pub fn decide(e: &Evidence) -> Decision {
    let per_class = e.train_images / e.classes.max(1);
    let facts = format!(
        "Your dataset has {} training images in {} classes (about {per_class} per class). \
         A new classifier on the frozen pretrained network reached {:.1}% on the validation images.",
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
    } else if e.probe_retrain > 0 {
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
            "The probe shows accuracy rising all the way to the last block group, so the pretrained features suit your classes; with this much data, fine-tuning rarely adds more than a point and costs far more time, so graft trains the head (strategy `head`). Run `graft compare` to measure the alternatives.".to_string(),
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
