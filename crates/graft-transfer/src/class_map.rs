//! The `pretrained` strategy on the user's classes: which ImageNet classes stand for each of
//! them, from a mapping file or by matching names and wnids. Pure; tested without tensors.

use graft_models::imagenet::ClassName;

/// Lower case, `_`/`-` as spaces, a plural `s` dropped: `Honey_Bees` and `honey bee` meet.
fn normal(name: &str) -> String {
    let s: String = name
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c == '_' || c == '-' { ' ' } else { c })
        .collect();
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match s.strip_suffix('s') {
        Some(stem) if stem.len() > 2 && !stem.ends_with('s') => stem.to_string(),
        _ => s,
    }
}

/// An ImageNet class given as a wnid, an index or a name (short name or any synonym).
pub fn find_imagenet(spec: &str, imagenet: &[ClassName]) -> Vec<usize> {
    let spec = spec.trim();
    if let Ok(i) = spec.parse::<usize>() {
        return if i < imagenet.len() {
            vec![i]
        } else {
            Vec::new()
        };
    }
    if let Some(i) = imagenet.iter().position(|c| c.wnid == spec) {
        return vec![i];
    }
    let want = normal(spec);
    imagenet
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            normal(&c.name) == want || c.synonyms.split(',').any(|s| normal(s) == want)
        })
        .map(|(i, _)| i)
        .collect()
}

/// For each user class, the ImageNet classes whose probabilities are summed for it.
/// `explicit` rows are `(user class, ImageNet wnid | index | name)`; classes without a row are
/// matched by name. Every class must end up with at least one ImageNet class.
pub fn map_classes(
    user: &[String],
    imagenet: &[ClassName],
    explicit: &[(String, String)],
) -> Result<Vec<Vec<usize>>, String> {
    let mut out = Vec::new();
    let mut unmatched = Vec::new();
    for class in user {
        let rows: Vec<&String> = explicit
            .iter()
            .filter(|(c, _)| c == class)
            .map(|(_, t)| t)
            .collect();
        let mut ids: Vec<usize> = if rows.is_empty() {
            find_imagenet(class, imagenet)
        } else {
            let mut ids = Vec::new();
            for r in rows {
                let found = find_imagenet(r, imagenet);
                if found.is_empty() {
                    return Err(format!(
                        "class map: {r:?} (for {class:?}) is not an ImageNet wnid, index or name"
                    ));
                }
                ids.extend(found);
            }
            ids
        };
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            unmatched.push(class.clone());
        }
        out.push(ids);
    }
    if !unmatched.is_empty() {
        return Err(format!(
            "no ImageNet class matches {unmatched:?}; give a --class-map file with `class,imagenet` rows \
             (imagenet: a wnid like n02219486, an index, or a name)"
        ));
    }
    Ok(out)
}

/// The user class with the largest summed probability.
/// Each user class's share of the probability mass its ImageNet classes hold (rows sum to 1
/// unless no mapped class has any mass).
pub fn class_probabilities(probs: &[f32], map: &[Vec<usize>]) -> Vec<f32> {
    let scores: Vec<f32> = map
        .iter()
        .map(|ids| {
            ids.iter()
                .map(|&i| probs.get(i).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let total: f32 = scores.iter().sum();
    if total > 0.0 {
        scores.iter().map(|s| s / total).collect()
    } else {
        scores
    }
}

pub fn predict(probs: &[f32], map: &[Vec<usize>]) -> usize {
    let score = |ids: &Vec<usize>| {
        ids.iter()
            .map(|&i| probs.get(i).copied().unwrap_or(0.0))
            .sum::<f32>()
    };
    (0..map.len()).fold(0, |best, c| {
        if score(&map[c]) > score(&map[best]) {
            c
        } else {
            best
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use graft_models::imagenet::classes;

    #[test]
    fn hymenoptera_classes_match_imagenet_ant_and_bee() {
        let map = map_classes(&["ants".into(), "bees".into()], classes(), &[]).unwrap_or_default();
        let wnids: Vec<&str> = map
            .iter()
            .map(|ids| classes()[ids[0]].wnid.as_str())
            .collect();
        assert_eq!(wnids, vec!["n02219486", "n02206856"]);
    }

    #[test]
    fn synonyms_wnids_and_explicit_rows_are_honoured() {
        assert_eq!(
            find_imagenet("emmet", classes()),
            find_imagenet("ant", classes())
        );
        assert_eq!(find_imagenet("n02206856", classes()), vec![309]);
        let map = map_classes(
            &["gadgets".into()],
            classes(),
            &[
                ("gadgets".into(), "laptop".into()),
                ("gadgets".into(), "681".into()), // notebook, by index
            ],
        );
        assert_eq!(map.map(|m| m[0].len()), Ok(2));
    }

    #[test]
    fn unmatched_classes_are_named_with_the_way_out() {
        let err = map_classes(&["ants".into(), "brain".into()], classes(), &[])
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("brain") && err.contains("--class-map"),
            "{err}"
        );
    }

    #[test]
    fn prediction_sums_the_mapped_probabilities() {
        let probs = [0.3, 0.25, 0.25, 0.2];
        assert_eq!(predict(&probs, &[vec![0], vec![1, 2]]), 1);
    }
}
