//! Real kills: `graft train` is sent SIGKILL at points found by watching its run directory and
//! cache (mid-extraction, mid-training, while an epoch's checkpoint is being written). The
//! next `--resume` (or, when no epoch was saved yet, the same command again) ends exactly
//! where the uninterrupted run does: the same metrics, byte-identical model files. Ctrl-C
//! (SIGINT) stops a run with a hint to resume it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "../../../tests/common/data.rs"]
mod data;
#[path = "../../../tests/common/graft.rs"]
mod graft;

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(rel)
}

fn command(args: &[String], home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_graft"));
    cmd.args(args)
        .env("GRAFT_HOME", home)
        .env("GRAFT_OFFLINE", "1");
    cmd
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn train_args(strategy: &str, epochs: usize, out: &Path, extra: &[&str]) -> Vec<String> {
    let fixed = [
        "-q",
        "train",
        "--json",
        "--force",
        "--strategy",
        strategy,
        "--patience",
        "1000",
    ];
    fixed
        .iter()
        .map(|s| s.to_string())
        .chain(["--epochs".into(), epochs.to_string()])
        .chain([
            "--weights".into(),
            shared("weights/efficientnet-lite0-57934424.pth")
                .display()
                .to_string(),
        ])
        .chain([
            "--data".into(),
            shared("data/hymenoptera").display().to_string(),
        ])
        .chain(["--out".into(), out.display().to_string()])
        .chain(extra.iter().map(|s| s.to_string()))
        .collect()
}

/// Starts graft and sends SIGKILL as soon as `when` holds (polled every millisecond, for at
/// most two minutes). Returns whether the kill landed before graft finished by itself.
fn kill_when(args: &[String], home: &Path, when: &dyn Fn() -> bool) -> bool {
    let mut child = command(args, home)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn graft");
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if when() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    panic!("the kill condition never held");
}

/// Continues a killed run: `--resume` when an epoch was saved, else the same command again.
fn finish(args: &[String], dir: &Path, home: &Path) {
    let resumable = dir.join("resume/state.json").is_file();
    let again: Vec<String> = if resumable {
        ["-q", "train", "--json", "--resume"]
            .iter()
            .map(|s| s.to_string())
            .chain([dir.display().to_string()])
            .collect()
    } else {
        args.to_vec()
    };
    ok(command(&again, home).output().expect("run graft"));
}

/// Every metrics field but the wall-clock seconds.
fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("json");
            v.as_object_mut().map(|o| o.remove("seconds"));
            v
        })
        .collect()
}

fn same_run(a: &Path, b: &Path) {
    assert_eq!(metrics(a), metrics(b), "same epochs, same numbers");
    // result.json accounts for the whole run, the epochs before the kill included.
    let (ra, rb) = (result(a), result(b));
    for key in ["epochs_run", "best_epoch", "stopped", "val_accuracy"] {
        assert_eq!(ra[key], rb[key], "result.json's {key}");
    }
    for f in ["model.safetensors", "model.json", "predictions.csv"] {
        let read = |d: &Path| std::fs::read(d.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(read(a) == read(b), "{f} differs after the kill");
    }
}

/// A finished run's `result.json`.
fn result(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("result.json")).expect("result.json");
    serde_json::from_str(&text).expect("json")
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

fn cache_entries(home: &Path) -> usize {
    fn count(p: &Path) -> usize {
        std::fs::read_dir(p).map_or(0, |r| {
            r.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        count(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
    }
    count(&home.join("features"))
}

#[test]
fn a_partial_run_killed_mid_extraction_mid_epoch_and_mid_checkpoint_ends_as_if_never_killed() {
    let warm = tempfile::tempdir().expect("tmp");
    let runs = tempfile::tempdir().expect("tmp");
    let reference = runs.path().join("reference");
    let args = |out: &Path| train_args("partial:2", 3, out, &[]);
    ok(command(&args(&reference), warm.path())
        .output()
        .expect("run graft"));

    // Mid-extraction, with a cold cache of its own.
    let cold = tempfile::tempdir().expect("tmp");
    let dir = runs.path().join("extraction");
    let killed = kill_when(&args(&dir), cold.path(), &|| {
        cache_entries(cold.path()) >= 40
    });
    assert!(killed, "the kill landed during extraction");
    finish(&args(&dir), &dir, cold.path());
    same_run(&reference, &dir);

    // Mid-epoch: epoch 0 saved, epoch 1 under way.
    let dir = runs.path().join("epoch");
    let metrics_file = dir.join("metrics.jsonl");
    let killed = kill_when(&args(&dir), warm.path(), &|| lines(&metrics_file) >= 1);
    assert!(killed, "the kill landed during training");
    finish(&args(&dir), &dir, warm.path());
    same_run(&reference, &dir);

    // While epoch 1's checkpoint is written: its resume folder exists, the pointer may not
    // point at it yet.
    let dir = runs.path().join("checkpoint");
    let folder = dir.join("resume/epoch-2");
    let killed = kill_when(&args(&dir), warm.path(), &|| folder.exists());
    assert!(killed, "the kill landed during the checkpoint");
    finish(&args(&dir), &dir, warm.path());
    same_run(&reference, &dir);
}

#[test]
fn head_runs_killed_during_training_resume_to_the_same_model() {
    let home = tempfile::tempdir().expect("tmp");
    let runs = tempfile::tempdir().expect("tmp");
    for (name, extra) in [("linear", vec![]), ("mlp", vec!["--head", "mlp:64"])] {
        // Many short epochs, so the kill lands inside training.
        let args = |out: &Path| train_args("head", 400, out, &extra);
        let reference = runs.path().join(format!("{name}-reference"));
        ok(command(&args(&reference), home.path())
            .output()
            .expect("run graft"));
        let dir = runs.path().join(name);
        let metrics_file = dir.join("metrics.jsonl");
        kill_when(&args(&dir), home.path(), &|| lines(&metrics_file) >= 20);
        finish(&args(&dir), &dir, home.path());
        same_run(&reference, &dir);
    }
}

/// Ctrl-C (SIGINT) stops a run with a line saying how to continue it and the shell's code for
/// an interrupt, 130; the run then resumes to its end.
#[test]
fn ctrl_c_says_how_to_resume_and_the_run_resumes() {
    let home = tempfile::tempdir().expect("tmp");
    let runs = tempfile::tempdir().expect("tmp");
    let dir = runs.path().join("interrupted");
    let args = train_args("head", 400, &dir, &[]);
    let child = command(&args, home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn graft");
    let metrics_file = dir.join("metrics.jsonl");
    let out = graft::interrupt_when(child, &|| lines(&metrics_file) >= 5);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted:"), "{stderr}");
    assert!(stderr.contains("graft train --resume RUN_DIR"), "{stderr}");
    finish(&args, &dir, home.path());
    let done = result(&dir);
    assert_eq!(done["epochs_run"], 400, "{done}");
}
