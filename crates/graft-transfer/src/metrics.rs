//! Classification metrics from a confusion matrix: accuracy, per-class precision and recall.

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// `matrix[truth][predicted]`.
    pub matrix: Vec<Vec<usize>>,
}

impl Confusion {
    pub fn new(classes: usize) -> Self {
        Self {
            matrix: vec![vec![0; classes]; classes],
        }
    }

    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.matrix[truth][predicted] += 1;
    }

    pub fn total(&self) -> usize {
        self.matrix.iter().flatten().sum()
    }

    pub fn accuracy(&self) -> f64 {
        let correct: usize = (0..self.matrix.len()).map(|i| self.matrix[i][i]).sum();
        correct as f64 / self.total().max(1) as f64
    }

    /// Of the images predicted as class `c`, the fraction that are `c` (0 when none predicted).
    pub fn precision(&self, c: usize) -> f64 {
        let predicted: usize = self.matrix.iter().map(|row| row[c]).sum();
        if predicted == 0 {
            0.0
        } else {
            self.matrix[c][c] as f64 / predicted as f64
        }
    }

    /// Of the images of class `c`, the fraction predicted as `c`.
    pub fn recall(&self, c: usize) -> f64 {
        let actual: usize = self.matrix[c].iter().sum();
        if actual == 0 {
            0.0
        } else {
            self.matrix[c][c] as f64 / actual as f64
        }
    }

    /// Unweighted mean over classes of F1 = 2PR/(P+R) (0 for a class never predicted or seen),
    /// as scikit-learn's `f1_score(average="macro")`.
    pub fn macro_f1(&self) -> f64 {
        let n = self.matrix.len();
        let sum: f64 = (0..n)
            .map(|c| {
                let (p, r) = (self.precision(c), self.recall(c));
                if p + r == 0.0 {
                    0.0
                } else {
                    2.0 * p * r / (p + r)
                }
            })
            .sum();
        sum / n.max(1) as f64
    }

    /// A plain-text report: per-class precision/recall and the matrix.
    pub fn render(&self, classes: &[String]) -> String {
        let w = classes.iter().map(|c| c.len()).max().unwrap_or(5).max(5);
        let mut out = format!("{:<w$}  precision  recall  images\n", "class");
        for (i, c) in classes.iter().enumerate() {
            out += &format!(
                "{c:<w$}  {:>8.1}%  {:>5.1}%  {:>6}\n",
                100.0 * self.precision(i),
                100.0 * self.recall(i),
                self.matrix[i].iter().sum::<usize>()
            );
        }
        out += &format!(
            "\nconfusion matrix (rows: truth, columns: predicted)\n{:<w$}",
            ""
        );
        for i in 0..classes.len() {
            out += &format!(" {i:>5}");
        }
        out += "\n";
        for (i, c) in classes.iter().enumerate() {
            out += &format!("{c:<w$}");
            for v in &self.matrix[i] {
                out += &format!(" {v:>5}");
            }
            out += &format!("   ({i})\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_recall_and_accuracy_from_the_matrix() {
        let mut c = Confusion::new(2);
        for (t, p) in [(0, 0), (0, 0), (0, 1), (1, 1)] {
            c.add(t, p);
        }
        assert!((c.accuracy() - 0.75).abs() < 1e-12);
        assert!((c.recall(0) - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.precision(1) - 0.5).abs() < 1e-12);
        assert!(c.render(&["ants".into(), "bees".into()]).contains("ants"));
    }
}

/// Fraction of rows whose true class is among the `k` most probable.
pub fn top_k_accuracy(probs: &[Vec<f32>], truth: &[usize], k: usize) -> f64 {
    let hits = probs
        .iter()
        .zip(truth)
        .filter(|(row, t)| {
            let p = row.get(**t).copied().unwrap_or(f32::NEG_INFINITY);
            row.iter().filter(|&&v| v > p).count() < k
        })
        .count();
    hits as f64 / probs.len().max(1) as f64
}

#[cfg(test)]
mod f1_tests {
    use super::*;

    #[test]
    fn macro_f1_matches_scikit_learn() {
        // y_true = [0,0,0,1,1,2], y_pred = [0,0,1,1,2,2]: sklearn macro F1 = (0.8 + 0.5 + 2/3) / 3
        let mut c = Confusion::new(3);
        for (t, p) in [(0, 0), (0, 0), (0, 1), (1, 1), (1, 2), (2, 2)] {
            c.add(t, p);
        }
        assert!((c.macro_f1() - 0.655_556).abs() < 1e-5, "{}", c.macro_f1());
    }

    #[test]
    fn top_k_counts_the_truth_among_the_k_most_probable() {
        let probs = vec![vec![0.5, 0.3, 0.2], vec![0.1, 0.2, 0.7]];
        assert_eq!(top_k_accuracy(&probs, &[1, 0], 1), 0.0);
        assert_eq!(top_k_accuracy(&probs, &[1, 0], 2), 0.5);
        assert_eq!(top_k_accuracy(&probs, &[1, 0], 3), 1.0);
    }
}
