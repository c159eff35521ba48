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

fn regex_lite(pattern: &str) -> Result<regex::Regex, WeightsError> {
    regex::Regex::new(pattern).map_err(|e| WeightsError::KeyMap {
        pattern: pattern.to_string(),
        detail: e.to_string(),
    })
}
