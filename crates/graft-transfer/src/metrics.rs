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
