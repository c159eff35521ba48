use burn_store::KeyRemapper;

use crate::WeightsError;

/// Foreign tensor names -> module paths, as ordered regex rewrites (burn-store's
/// `KeyRemapper` semantics: every pattern is tried on every key, in order). One per architecture;
/// forward code never holds a weight name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyMap {
    pairs: Vec<(String, String)>,
}

impl KeyMap {
    pub fn new(pairs: &[(&str, &str)]) -> Self {
        Self::from_pairs(
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    pub fn remapper(&self) -> Result<KeyRemapper, WeightsError> {
        let mut r = KeyRemapper::new();
        for (from, to) in &self.pairs {
            r = r.add_pattern(from, to).map_err(|e| WeightsError::KeyMap {
                pattern: from.clone(),
                detail: e.to_string(),
            })?;
        }
        Ok(r)
    }

    /// The map back, module paths -> the foreign names this map reads: what a model is saved
    /// under for the framework its weights came from. Only maps whose patterns are literal
    /// text, `\.` and `(\d+)` or `(\d)` groups can be inverted (every architecture's map is).
    pub fn inverse(&self) -> Result<Self, WeightsError> {
        self.pairs
            .iter()
            .map(|(from, to)| invert_pair(from, to))
            .collect::<Result<Vec<_>, _>>()
            .map(Self::from_pairs)
    }

    /// Like [`Self::map`], but only the first pattern that matches rewrites the name: how an
    /// [`Self::inverse`] map is applied, since one module path has one foreign name.
    pub fn map_first(&self, name: &str) -> Result<String, WeightsError> {
        Ok(self.first_match()?.apply(name))
    }

    /// [`Self::map_first`] for many names, with the patterns compiled once: compiling them
    /// for each of a model's tensors took 47 ms of saving EfficientNet-Lite0.
    pub fn first_match(&self) -> Result<FirstMatch, WeightsError> {
        self.pairs
            .iter()
            .map(|(from, to)| Ok((regex_lite(from)?, to.clone())))
            .collect::<Result<Vec<_>, _>>()
            .map(FirstMatch)
    }

    /// The module path a foreign name lands on (for reports and tests; loading uses
    /// [`Self::remapper`]).
    pub fn map(&self, name: &str) -> Result<String, WeightsError> {
        let mut out = name.to_string();
        for (from, to) in &self.pairs {
            let re = regex_lite(from)?;
            out = re.replace_all(&out, to.as_str()).into_owned();
        }
        Ok(out)
    }
}

/// A [`KeyMap`]'s patterns compiled, applied as [`KeyMap::map_first`] does.
pub struct FirstMatch(Vec<(regex::Regex, String)>);

impl FirstMatch {
    /// `name` rewritten by the first pattern that matches it; unchanged when none does.
    pub fn apply(&self, name: &str) -> String {
        self.0.iter().find(|(re, _)| re.is_match(name)).map_or_else(
            || name.to_string(),
            |(re, to)| re.replace(name, to.as_str()).into_owned(),
        )
    }
}

/// `^a\.(\d+)\.b\.` -> `x.$1.y.` becomes `^x\.(\d+)\.y\.` -> `a.$1.b.`, with the groups
/// renumbered in the order the replacement used them.
fn invert_pair(from: &str, to: &str) -> Result<(String, String), WeightsError> {
    let refuse = |detail: &str| WeightsError::KeyMap {
        pattern: from.to_string(),
        detail: format!("cannot be inverted: {detail}"),
    };
    // The pattern as a template: literal text, with `$k` for its k-th group.
    let body = from
        .strip_prefix('^')
        .ok_or_else(|| refuse("not anchored with ^"))?;
    let mut template = String::new();
    let mut groups = 0;
    let mut rest = body;
    while !rest.is_empty() {
        if let Some(r) = rest
            .strip_prefix(r"(\d+)")
            .or_else(|| rest.strip_prefix(r"(\d)"))
        {
            groups += 1;
            template += &format!("${{{groups}}}");
            rest = r;
        } else if let Some(r) = rest.strip_prefix('\\') {
            let mut chars = r.chars();
            let c = chars.next().ok_or_else(|| refuse("trailing backslash"))?;
            template.push(c);
            rest = chars.as_str();
        } else {
            let mut chars = rest.chars();
            let c = chars.next().unwrap_or_default();
            if "()[]{}*+?|^$".contains(c) {
                return Err(refuse(&format!("regex syntax {c:?}")));
            }
            template.push(c);
            rest = chars.as_str();
        }
    }
    // The replacement as a pattern: `$N` becomes a group; record which.
    let mut pattern = String::from("^");
    let mut order = Vec::new();
    let mut rest = to;
    while let Some(i) = rest.find('$') {
        pattern += &regex::escape(&rest[..i]);
        let digits: String = rest[i + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let n: usize = digits
            .parse()
            .map_err(|_| refuse("a $ not followed by a group number"))?;
        order.push(n);
        pattern += r"(\d+)";
        rest = &rest[i + 1 + digits.len()..];
    }
    pattern += &regex::escape(rest);
    // Group k of the pattern is group order.position(k) + 1 of the inverse's match.
    let mut inverse = template;
    for k in 1..=groups {
        let j = order
            .iter()
            .position(|&n| n == k)
            .ok_or_else(|| refuse(&format!("group {k} is not used by the replacement")))?;
        inverse = inverse.replace(&format!("${{{k}}}"), &format!("${{#{}}}", j + 1));
    }
    Ok((pattern, inverse.replace("${#", "${")))
}

fn regex_lite(pattern: &str) -> Result<regex::Regex, WeightsError> {
    regex::Regex::new(pattern).map_err(|e| WeightsError::KeyMap {
        pattern: pattern.to_string(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_maps_module_paths_back_to_the_foreign_names() -> Result<(), WeightsError> {
        let map = KeyMap::new(&[
            (
                r"^layer1\.(\d+)\.conv(\d)\.",
                "layers.0.blocks.$1.conv$2.conv.",
            ),
            (r"^_bn0\.", "stem.bn."),
        ]);
        let inv = map.inverse()?;
        for name in ["layer1.3.conv2.weight", "_bn0.running_var"] {
            let ours = map.map(name)?;
            assert_eq!(inv.map_first(&ours)?, name);
        }
        let bad = KeyMap::new(&[(r"^a.*", "b.")]);
        assert!(bad.inverse().is_err());
        Ok(())
    }
}
