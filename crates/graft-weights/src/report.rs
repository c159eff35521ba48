use std::fmt;

use burn_store::{ApplyError, ApplyResult};
use serde::Serialize;

/// A tensor whose shape in the file differs from the module's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    pub name: String,
    pub expected: Vec<usize>,
    pub found: Vec<usize>,
}

/// What loading a weight file did, tensor by tensor (module paths, after the key map).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LoadReport {
    pub applied: Vec<String>,
    /// In the module, not in the file.
    pub missing: Vec<String>,
    /// In the file, not in the module (and not ignored by the policy).
    pub unused: Vec<String>,
    /// In the file and ignored by the policy (e.g. `num_batches_tracked`).
    pub ignored: Vec<String>,
    pub mismatched: Vec<Mismatch>,
    /// Any other per-tensor failure burn-store reported (dtype, adapter, read).
    pub errors: Vec<String>,
}

/// Which gaps between a file and a module are acceptable. Strict by default: everything the
/// module has must be loaded, and everything the file has must be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadPolicy {
    /// Module path prefixes that may stay at their initial values (a replaced head).
    pub allow_missing: Vec<String>,
    /// File tensor name suffixes that carry no weights (BatchNorm's step counter).
    pub ignore: Vec<String>,
    /// File tensor prefixes that may go unused (the old head when a new one replaces it).
    pub allow_unused: Vec<String>,
}

impl Default for LoadPolicy {
    fn default() -> Self {
        Self::strict()
    }
}

impl LoadPolicy {
    pub fn strict() -> Self {
        Self {
            allow_missing: Vec::new(),
            ignore: vec!["num_batches_tracked".to_string()],
            allow_unused: Vec::new(),
        }
    }

    /// Strict except for a replaced head: its parameters may be missing, and the file's own
    /// head (possibly of another shape) is neither required nor applied.
    pub fn replacing_head(head_prefixes: &[&str]) -> Self {
        let prefixes: Vec<String> = head_prefixes.iter().map(|p| p.to_string()).collect();
        Self {
            allow_missing: prefixes.clone(),
            allow_unused: prefixes,
            ..Self::strict()
        }
    }

    fn is_ignored(&self, name: &str) -> bool {
        self.ignore.iter().any(|s| name.ends_with(s.as_str()))
    }
}

impl LoadReport {
    /// Builds a report from burn-store's result, sorting unused names into ignored and unused.
    pub fn from_apply(result: ApplyResult, policy: &LoadPolicy) -> Self {
        let mut report = LoadReport {
            applied: result.applied,
            ..Default::default()
        };
        report.missing = result.missing.into_iter().map(|(path, _)| path).collect();
        for name in result.unused {
            if policy.is_ignored(&name) {
                report.ignored.push(name);
            } else {
                report.unused.push(name);
            }
        }
        for e in result.errors {
            match e {
                ApplyError::ShapeMismatch {
                    path,
                    expected,
                    found,
                } => report.mismatched.push(Mismatch {
                    name: path,
                    expected: expected.to_vec(),
                    found: found.to_vec(),
                }),
                other => report.errors.push(other.to_string()),
            }
        }
        report
    }

    /// The decision, kept apart from loading so it is testable without tensors: `Ok` when every
    /// gap is one the policy allows.
    pub fn violations(&self, policy: &LoadPolicy) -> LoadReport {
        let allowed =
            |name: &str, prefixes: &[String]| prefixes.iter().any(|p| name.starts_with(p.as_str()));
        LoadReport {
            applied: Vec::new(),
            missing: self
                .missing
                .iter()
                .filter(|n| !allowed(n, &policy.allow_missing))
                .cloned()
                .collect(),
            unused: self
                .unused
                .iter()
                .filter(|n| !allowed(n, &policy.allow_unused))
                .cloned()
                .collect(),
            ignored: Vec::new(),
            mismatched: self
                .mismatched
                .iter()
                .filter(|m| !allowed(&m.name, &policy.allow_unused))
                .cloned()
                .collect(),
            errors: self.errors.clone(),
        }
    }

    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.unused.is_empty()
            && self.mismatched.is_empty()
            && self.errors.is_empty()
    }
}

fn list(f: &mut fmt::Formatter<'_>, title: &str, names: &[String]) -> fmt::Result {
    const SHOWN: usize = 12;
    if names.is_empty() {
        return Ok(());
    }
    writeln!(f, "  {title} ({}):", names.len())?;
    for n in names.iter().take(SHOWN) {
        writeln!(f, "    {n}")?;
    }
    if names.len() > SHOWN {
        writeln!(f, "    ... and {} more", names.len() - SHOWN)?;
    }
    Ok(())
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.applied.is_empty() {
            writeln!(f, "  applied: {} tensors", self.applied.len())?;
        }
        if !self.mismatched.is_empty() {
            writeln!(f, "  shape mismatch ({}):", self.mismatched.len())?;
            for m in self.mismatched.iter().take(12) {
                writeln!(
                    f,
                    "    {}: model expects {:?}, file has {:?}",
                    m.name, m.expected, m.found
                )?;
            }
        }
        list(f, "missing from the file", &self.missing)?;
        list(f, "in the file but not in the model", &self.unused)?;
        list(f, "errors", &self.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> LoadReport {
        LoadReport {
            applied: vec!["stem.conv.weight".into()],
            missing: vec!["classifier.weight".into(), "classifier.bias".into()],
            unused: vec!["classifier.weight".into()],
            ignored: vec![],
            mismatched: vec![],
            errors: vec![],
        }
    }

    #[test]
    fn strict_policy_rejects_a_missing_head() {
        let v = report().violations(&LoadPolicy::strict());
        assert_eq!(v.missing, vec!["classifier.weight", "classifier.bias"]);
        assert!(!v.is_clean());
    }

    #[test]
    fn replacing_head_allows_exactly_the_head() {
        let mut r = report();
        assert!(
            r.violations(&LoadPolicy::replacing_head(&["classifier."]))
                .is_clean()
        );
        r.missing.push("stem.bn.gamma".into());
        let v = r.violations(&LoadPolicy::replacing_head(&["classifier."]));
        assert_eq!(v.missing, vec!["stem.bn.gamma"]);
    }

    #[test]
    fn display_names_every_kind_of_problem() {
        let mut r = report();
        r.mismatched.push(Mismatch {
            name: "fc.weight".into(),
            expected: vec![512, 10],
            found: vec![512, 1000],
        });
        let text = r.to_string();
        assert!(
            text.contains("fc.weight: model expects [512, 10], file has [512, 1000]"),
            "{text}"
        );
        assert!(text.contains("missing from the file (2)"), "{text}");
        assert!(text.contains("classifier.bias"), "{text}");
    }
}
