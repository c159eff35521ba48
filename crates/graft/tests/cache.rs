//! The feature cache end to end: a warm run reuses every entry; other weights or another
//! freeze point never reuse a stale one; `graft cache du`, `verify` and `prune` see and
//! change what runs left.

#[path = "../../../tests/common/data.rs"]
mod data;
#[path = "../../../tests/common/graft.rs"]
mod graft;

use std::path::Path;
use std::process::Output;

fn run(args: &[&str], home: &Path) -> Output {
    graft::graft(home).args(args).output().expect("run graft")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (hits, computed) of a head or partial run.
fn train(strategy: &str, weights: &Path, data: &Path, out: &Path, home: &Path) -> (u64, u64) {
    let stdout = ok(graft::graft(home)
        .args([
            "-q",
            "train",
            "--json",
            "--force",
            "--epochs",
            "2",
            // The counts below are of one view per image (the mirrored one is train.rs's).
            "--tta",
            "none",
            "--strategy",
            strategy,
        ])
        .arg("--weights")
        .arg(weights)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run graft"));
    let line = stdout.lines().last().unwrap_or_default();
    let result: serde_json::Value = serde_json::from_str(line).expect("json");
    let count = |k: &str| result["cache"][k].as_u64().unwrap_or(u64::MAX);
    (count("hits"), count("computed"))
}

#[test]
fn warm_runs_reuse_entries_other_weights_or_freeze_points_never_do_and_upkeep_works() {
    let root = tempfile::tempdir().expect("tmp");
    let (home, data, out) = (
        root.path().join("home"),
        root.path().join("data"),
        root.path().join("run"),
    );
    data::hymenoptera_cut(&data, 12, 6);
    let lite0 = data::lite0_weights();
    let images = 36;
    assert_eq!(train("head", &lite0, &data, &out, &home), (0, images));
    assert_eq!(train("head", &lite0, &data, &out, &home), (images, 0));
    // The same values in another file (safetensors): a different weights digest, so the
    // entries are computed again, never taken from the .pth's.
    let other = root.path().join("lite0.safetensors");
    ok(run(
        &[
            "-q",
            "export",
            "--format",
            "safetensors",
            "--weights",
            &lite0.display().to_string(),
            "--out",
            &other.display().to_string(),
        ],
        &home,
    ));
    assert_eq!(train("head", &other, &data, &out, &home), (0, images));
    // Another freeze point: nothing from the head's pooled features is reused.
    let (hits, computed) = train("partial:1", &lite0, &data, &out, &home);
    assert_eq!(hits, 0, "partial:1 reused {hits} entries");
    assert!(computed >= images, "{computed}");

    let du: serde_json::Value =
        serde_json::from_str(&ok(run(&["cache", "du", "--json"], &home))).expect("json");
    let entries = du["entries"].as_u64().unwrap_or(0);
    assert_eq!(
        du["models"]["efficientnet_lite0"]["entries"].as_u64(),
        Some(entries)
    );
    assert!(entries >= 3 * images, "{du}");
    let verify = ok(run(&["cache", "verify"], &home));
    assert!(
        verify.contains(&format!("checked {entries} entries: 0 damaged")),
        "{verify}"
    );
    // The name the top-level help uses for it.
    let check = ok(run(&["cache", "check"], &home));
    assert!(
        check.contains(&format!("checked {entries} entries")),
        "{check}"
    );
    ok(run(&["cache", "prune", "--max-size", "0"], &home));
    let du: serde_json::Value =
        serde_json::from_str(&ok(run(&["cache", "du", "--json"], &home))).expect("json");
    assert_eq!(du["entries"].as_u64(), Some(0), "{du}");
    assert_eq!(train("head", &lite0, &data, &out, &home), (0, images));
}
