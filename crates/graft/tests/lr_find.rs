//! `graft lr-find` end to end on hymenoptera: the curve, the suggestion and the plot, the
//! groups' path (partial), the rule that the reported split is never read, and bad settings.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(rel)
}

fn lr_find(data: &Path, out: &Path, home: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(["-q", "lr-find", "--json", "--weights"])
        .arg(shared("weights/efficientnet-lite0-57934424.pth"))
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env("GRAFT_HOME", home)
        .env("GRAFT_OFFLINE", "1")
        .output()
        .expect("run graft")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn points(v: &serde_json::Value) -> Vec<(f64, f64)> {
    v["points"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["lr"].as_f64().unwrap_or(0.0),
                        p["loss"].as_f64().unwrap_or(0.0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn head_curve_is_written_plotted_and_does_not_read_the_reported_split() {
    let home = tempfile::tempdir().expect("tmp");
    let tmp = tempfile::tempdir().expect("tmp");
    let real = json(&lr_find(
        &shared("data/hymenoptera"),
        &tmp.path().join("real"),
        home.path(),
        &["--steps", "60"],
    ));
    let pts = points(&real);
    assert_eq!(
        pts.len(),
        60,
        "every step of a linear head's test runs: {real}"
    );
    // Geometric from 1e-7 to 10.
    assert!((pts[0].0 - 1e-7).abs() < 1e-15 && (pts[59].0 - 10.0).abs() < 1e-9);
    assert!(pts.iter().all(|p| p.1.is_finite() && p.1 >= 0.0));
    let suggested = real["suggestion"]["suggested"].as_f64().unwrap_or(0.0);
    assert!(suggested > 0.0, "{real}");
    assert_eq!(
        real["train_images"], 208,
        "the selection split is set apart: {real}"
    );
    let dir = tmp.path().join("real");
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("lr_find.json")).expect("lr_find.json"),
    )
    .expect("json");
    assert_eq!(points(&file), pts, "the file holds the curve printed");
    let svg = std::fs::read_to_string(dir.join("lr_find.svg")).expect("lr_find.svg");
    assert!(svg.starts_with("<svg") && svg.contains("suggested lr") && svg.contains("1e-7"));

    // The same dataset with every reported image unreadable: the same curve, no complaint.
    let broken = tmp.path().join("broken");
    std::fs::create_dir_all(&broken).expect("mkdir");
    symlink_dir(&shared("data/hymenoptera/train"), &broken.join("train"));
    for class in ["ants", "bees"] {
        let src = shared("data/hymenoptera/val").join(class);
        let dst = broken.join("val").join(class);
        std::fs::create_dir_all(&dst).expect("mkdir");
        for entry in std::fs::read_dir(src).expect("val").flatten() {
            std::fs::write(dst.join(entry.file_name()), b"not an image").expect("write");
        }
    }
    let out = lr_find(
        &broken,
        &tmp.path().join("b"),
        home.path(),
        &["--steps", "60"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(points(&json(&out)), pts, "{stderr}");
    assert!(!stderr.contains("unreadable"), "{stderr}");
}

#[test]
fn an_unreadable_training_image_is_named_and_the_exit_status_is_1() {
    let home = tempfile::tempdir().expect("tmp");
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    symlink_dir(&shared("data/hymenoptera/val"), &data.join("val"));
    for class in ["ants", "bees"] {
        let dst = data.join("train").join(class);
        std::fs::create_dir_all(&dst).expect("mkdir");
        let src = shared("data/hymenoptera/train").join(class);
        for entry in std::fs::read_dir(src).expect("train").flatten() {
            std::os::unix::fs::symlink(entry.path(), dst.join(entry.file_name())).expect("link");
        }
    }
    std::fs::write(data.join("train/ants/zz-broken.jpg"), b"not an image").expect("write");
    let out = lr_find(
        &data,
        &tmp.path().join("o"),
        home.path(),
        &["--steps", "20"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("zz-broken.jpg"), "{stderr}");
    // Named once on its line: the decoder's error already begins with the path.
    let line = stderr
        .lines()
        .find(|l| l.starts_with("unreadable: "))
        .unwrap_or_else(|| panic!("no unreadable line: {stderr}"));
    assert_eq!(line.matches("zz-broken.jpg").count(), 1, "{line}");
    // The curve of the readable images is still printed and written.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json on stdout");
    assert_eq!(points(&v).len(), 20, "{v}");
    assert!(tmp.path().join("o/lr_find.json").is_file());
}

#[cfg(unix)]
fn symlink_dir(src: &Path, dst: &Path) {
    std::os::unix::fs::symlink(src, dst).expect("symlink");
}

#[test]
fn partial_trains_groups_and_stops_when_the_loss_diverges() {
    let home = tempfile::tempdir().expect("tmp");
    let tmp = tempfile::tempdir().expect("tmp");
    let v = json(&lr_find(
        &shared("data/hymenoptera"),
        &tmp.path().join("p"),
        home.path(),
        &[
            "--strategy",
            "partial:1",
            "--steps",
            "40",
            "--start-lr",
            "1e-4",
            "--end-lr",
            "100",
        ],
    ));
    assert_eq!(v["strategy"], "partial:1");
    assert_eq!(
        v["batch_size"], 16,
        "the batch graft train uses on activations: {v}"
    );
    assert_eq!(v["backbone_lr_scale"], 0.1);
    // At rates up to 100, AdamW on a pretrained block group diverges well before the end.
    assert_eq!(v["stopped"], "diverged", "{v}");
    assert!(points(&v).len() < 40);
    assert!(v["suggestion"]["bounded"].as_bool().unwrap_or(false), "{v}");
}

#[test]
fn bad_settings_are_refused_before_anything_runs() {
    let home = tempfile::tempdir().expect("tmp");
    let tmp = tempfile::tempdir().expect("tmp");
    let data = shared("data/hymenoptera");
    for (extra, said) in [
        (
            &["--strategy", "pretrained"][..],
            "needs a strategy that trains",
        ),
        (
            &["--start-lr", "1", "--end-lr", "0.1"][..],
            "positive and increasing",
        ),
        (&["--steps", "3"][..], "at least"),
        (&["--select-on-eval"][..], "no decision"),
    ] {
        let out = lr_find(&data, &tmp.path().join("x"), home.path(), extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(said),
            "{extra:?}: {stderr}"
        );
    }
    assert!(
        !tmp.path().join("x").join("lr_find.json").exists(),
        "nothing is written for refused settings"
    );
}
