//! The evaluation protocol: no decision in train, compare, probe or auto reads the reported
//! split. The same images are given twice, once with the reported split's labels swapped
//! (ants <-> bees); every choice (the epoch, the probe curve and its recommendation, compare's
//! ranking, auto's strategy) must stay the same, and only the reported figures change.

use std::path::{Path, PathBuf};

#[path = "../../../tests/common/data.rs"]
mod data;
#[path = "../../../tests/common/graft.rs"]
mod graft;

/// A list file of hymenoptera training images: `train` then `val` per class, the reported
/// split's labels swapped when `corrupt`.
fn list(path: &Path, train: usize, val: usize, corrupt: bool) {
    let mut rows = String::from("path,label,split\n");
    for (class, other) in [("ants", "bees"), ("bees", "ants")] {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(data::shared("data/hymenoptera/train").join(class))
                .expect("read")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
                .collect();
        files.sort();
        for (i, f) in files.iter().take(train + val).enumerate() {
            let (label, split) = match i < train {
                true => (class, "train"),
                false if corrupt => (other, "val"),
                false => (class, "val"),
            };
            let f = std::fs::canonicalize(f).expect("absolute path");
            rows += &format!("{},{label},{split}\n", f.display());
        }
    }
    std::fs::write(path, rows).expect("write list");
}

/// `graft COMMAND --json` on `data` into `out`, with Lite0 and a short budget.
fn run(home: &Path, command: &str, data: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    graft::ok_json(
        &graft::graft(home)
            .args(["-q", command, "--json", "--force", "--weights"])
            .arg(data::lite0_weights())
            .arg("--data")
            .arg(data)
            .arg("--out")
            .arg(out)
            .args(extra)
            .output()
            .expect("run graft"),
    )
}

/// The metrics lines without their wall-clock seconds.
fn epochs(dir: &Path) -> Vec<serde_json::Value> {
    graft::outcome(dir).0
}

#[test]
fn corrupting_the_reported_split_changes_no_decision() {
    let home = tempfile::tempdir().expect("tmp");
    let tmp = tempfile::tempdir().expect("tmp");
    let (clean, corrupt) = (tmp.path().join("clean.csv"), tmp.path().join("corrupt.csv"));
    list(&clean, 20, 10, false);
    list(&corrupt, 20, 10, true);
    let out = |name: &str| tmp.path().join(name);

    // train: the epoch is chosen on the carved selection split.
    let train_args = ["--epochs", "8", "--patience", "8"];
    let a = run(home.path(), "train", &clean, &out("a"), &train_args);
    let b = run(home.path(), "train", &corrupt, &out("b"), &train_args);
    assert_eq!(a["selection"], b["selection"]);
    assert_eq!(a["selection"]["split"], "select");
    assert_eq!(a["selection"]["images"], 6, "15% of 20 per class");
    assert_eq!(a["best_epoch"], b["best_epoch"]);
    assert_eq!(epochs(&out("a")), epochs(&out("b")));
    assert_eq!(
        std::fs::read(out("a/model.safetensors")).expect("model"),
        std::fs::read(out("b/model.safetensors")).expect("model")
    );
    // The figure is on the reported split, and the swap turned it around.
    let (fa, fb) = (
        a["val_accuracy"].as_f64().unwrap_or(0.0),
        b["val_accuracy"].as_f64().unwrap_or(0.0),
    );
    assert!((fa + fb - 1.0).abs() < 1e-9, "{fa} + {fb}");

    // The L-BFGS head: its L2 strength by 5-fold CV on every training image.
    let lbfgs = ["--head-solver", "lbfgs"];
    // Into the AdamW run's folder (--force): its epochs must not stay behind as this run's.
    let la = run(home.path(), "train", &clean, &out("a"), &lbfgs);
    assert!(epochs(&out("a")).is_empty());
    let lb = run(home.path(), "train", &corrupt, &out("lb"), &lbfgs);
    assert_eq!(la["selection"], lb["selection"]);
    assert_eq!(la["selection"]["split"], "5-fold CV on train");
    assert_eq!(
        la["train_images"], 40,
        "the carved images are trained on too"
    );
    assert_eq!(la["epochs_run"], 0);
    assert_eq!(
        std::fs::read(out("a/model.safetensors")).expect("model"),
        std::fs::read(out("lb/model.safetensors")).expect("model")
    );

    // probe: its curve and recommendation read the selection split only.
    let pa = run(home.path(), "probe", &clean, &out("pa"), &[]);
    let pb = run(home.path(), "probe", &corrupt, &out("pb"), &[]);
    assert_eq!(pa["groups"], pb["groups"]);
    assert_eq!(pa["recommendation"], pb["recommendation"]);
    assert_eq!(pa["split"], "select");

    // compare: strategies are ranked on the selection split.
    let cmp = [
        "--strategies",
        "head,partial:1",
        "--epochs",
        "3",
        "--budget",
        "60",
    ];
    let ca = run(home.path(), "compare", &clean, &out("ca"), &cmp);
    let cb = run(home.path(), "compare", &corrupt, &out("cb"), &cmp);
    assert_eq!(ca["best"], cb["best"]);
    let ranks = |r: &serde_json::Value| -> Vec<serde_json::Value> {
        r["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|row| row["select_accuracy"].clone())
            .collect()
    };
    assert_eq!(ranks(&ca), ranks(&cb));
    assert!(ranks(&ca).iter().all(serde_json::Value::is_f64));

    // auto: the evidence and the choice.
    let auto = ["--epochs", "3"];
    let aa = run(home.path(), "auto", &clean, &out("aa"), &auto);
    let ab = run(home.path(), "auto", &corrupt, &out("ab"), &auto);
    for key in ["strategy", "rule", "evidence", "probe"] {
        assert_eq!(aa[key], ab[key], "{key}");
    }
}

#[test]
fn select_on_eval_keeps_the_tutorial_protocol_and_says_so() {
    let home = tempfile::tempdir().expect("tmp");
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data.csv");
    list(&data, 8, 4, false);
    let out = graft::graft(home.path())
        .args(["train", "--epochs", "3", "--select-on-eval", "--weights"])
        .arg(data::lite0_weights())
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(tmp.path().join("run"))
        .output()
        .expect("run graft");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("chosen on val (8 images") && text.contains("optimistic"),
        "{text}"
    );
    let result: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tmp.path().join("run/result.json")).expect("result.json"),
    )
    .expect("json");
    assert_eq!(result["selection"]["source"]["kind"], "report");
    assert_eq!(result["train_images"], 16, "nothing carved from train");
    assert_eq!(result["selection"]["accuracy"], result["val_accuracy"]);
}
