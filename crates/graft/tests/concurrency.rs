//! Four graft processes started together on one $GRAFT_HOME and one dataset, with a cold
//! feature cache: two head runs and two partial:1 runs. Every one succeeds, each equals a run
//! of the same strategy made alone in a home of its own, and the shared cache verifies clean.

#[path = "../../../tests/common/data.rs"]
mod data;

use std::path::Path;
use std::process::{Command, Output};

fn train(strategy: &str, data: &Path, out: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_graft"));
    cmd.args([
        "-q",
        "train",
        "--json",
        "--strategy",
        strategy,
        "--epochs",
        "3",
    ])
    .arg("--weights")
    .arg(data::lite0_weights())
    .arg("--data")
    .arg(data)
    .arg("--out")
    .arg(out)
    .env("GRAFT_HOME", home)
    .env("GRAFT_OFFLINE", "1");
    cmd
}

fn ok(out: Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The run's numbers and model, without wall-clock fields.
fn outcome(dir: &Path) -> (Vec<serde_json::Value>, Vec<u8>, Vec<u8>) {
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("json");
            v.as_object_mut().map(|o| o.remove("seconds"));
            v
        })
        .collect();
    let model = std::fs::read(dir.join("model.safetensors")).expect("model");
    let predictions = std::fs::read(dir.join("predictions.csv")).expect("predictions");
    (metrics, model, predictions)
}

#[test]
fn four_processes_on_one_home_all_succeed_with_the_results_of_runs_made_alone() {
    let root = tempfile::tempdir().expect("tmp");
    let data = root.path().join("data");
    data::hymenoptera_cut(&data, 16, 8);
    let strategies = ["head", "partial:1"];
    for s in strategies {
        let alone = root.path().join(format!("home-alone-{s}"));
        let out = train(s, &data, &root.path().join(format!("alone-{s}")), &alone)
            .output()
            .expect("run graft");
        ok(out, s);
    }
    let shared = root.path().join("home-shared");
    let children: Vec<_> = (0..4)
        .map(|i| {
            let s = strategies[i % 2];
            let out = root.path().join(format!("together-{i}"));
            (
                s,
                out.clone(),
                train(s, &data, &out, &shared).spawn().expect("spawn"),
            )
        })
        .collect();
    for (s, out, child) in children {
        ok(child.wait_with_output().expect("wait"), s);
        let alone = root.path().join(format!("alone-{s}"));
        assert!(
            outcome(&out) == outcome(&alone),
            "{} differs from {s} run alone",
            out.display()
        );
    }
    let verify = Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(["cache", "verify"])
        .env("GRAFT_HOME", &shared)
        .output()
        .expect("run graft");
    let report = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(
        verify.status.success() && report.contains(" 0 damaged"),
        "{report}"
    );
}
