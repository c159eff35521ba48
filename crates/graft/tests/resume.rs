//! An interrupted run (killed after an epoch, as Ctrl-C or `kill` would) resumed with
//! `--resume` ends exactly where the uninterrupted run does.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(rel)
}

fn graft(args: &[&str], home: &Path, interrupt_after: Option<usize>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_graft"));
    cmd.args(args)
        .env("GRAFT_HOME", home)
        .env("GRAFT_OFFLINE", "1");
    if let Some(e) = interrupt_after {
        cmd.env("GRAFT_TEST_INTERRUPT_AFTER_EPOCH", e.to_string());
    }
    cmd.output().expect("run graft")
}

/// Tensor name -> raw bytes (the header's metadata order is not stable, the tensors are).
fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut out: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.data().to_vec()))
        .collect();
    out.sort();
    out
}

fn check(strategy: &str, extra: &[&str], epochs: usize, interrupt_after: usize, files: &[&str]) {
    let home = tempfile::tempdir().expect("tmp");
    let runs = tempfile::tempdir().expect("tmp");
    let weights = shared("weights/efficientnet-lite0-57934424.pth");
    let data = shared("data/hymenoptera");
    let epochs = epochs.to_string();
    let base = |out: &Path| -> Vec<String> {
        [
            "-q",
            "train",
            "--json",
            "--strategy",
            strategy,
            "--epochs",
            &epochs,
            "--patience",
            "100",
            "--weights",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            weights.display().to_string(),
            "--data".into(),
            data.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ])
        .chain(extra.iter().map(|s| s.to_string()))
        .collect()
    };
    let (a, b) = (runs.path().join("a"), runs.path().join("b"));
    let args_a = base(&a);
    let full = graft(
        &args_a.iter().map(String::as_str).collect::<Vec<_>>(),
        home.path(),
        None,
    );
    assert!(
        full.status.success(),
        "{}",
        String::from_utf8_lossy(&full.stderr)
    );

    let args_b = base(&b);
    let killed = graft(
        &args_b.iter().map(String::as_str).collect::<Vec<_>>(),
        home.path(),
        Some(interrupt_after),
    );
    assert_eq!(
        killed.status.code(),
        Some(130),
        "the interruption hook fired"
    );
    let lines = std::fs::read_to_string(b.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .count();
    assert_eq!(lines, interrupt_after + 1);

    let resumed = graft(
        &[
            "-q",
            "train",
            "--json",
            "--resume",
            b.to_str().unwrap_or_default(),
        ],
        home.path(),
        None,
    );
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    // Every field but the wall-clock seconds.
    let metrics = |d: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(d.join("metrics.jsonl"))
            .expect("read")
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).expect("json");
                v.as_object_mut().map(|o| o.remove("seconds"));
                v
            })
            .collect()
    };
    assert_eq!(metrics(&a), metrics(&b), "same epochs, same numbers");
    for f in files {
        assert_eq!(tensors(&a.join(f)), tensors(&b.join(f)), "{f}");
    }
}

#[test]
fn interrupted_head_run_resumes_to_the_same_result() {
    check("head", &[], 8, 3, &["best.safetensors", "last.safetensors"]);
}

#[test]
fn interrupted_partial_run_resumes_to_the_same_result() {
    check(
        "partial:2",
        &[],
        3,
        0,
        &[
            "best.safetensors",
            "last.safetensors",
            "last_backbone.safetensors",
        ],
    );
}

#[test]
fn interrupted_mlp_head_run_with_dropout_resumes_to_the_same_result() {
    check(
        "head",
        &["--head", "mlp:64"],
        6,
        2,
        &["best.safetensors", "last.safetensors"],
    );
}
