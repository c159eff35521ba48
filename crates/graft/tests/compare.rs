//! `graft compare`, `graft probe` and `graft auto` end to end: on hymenoptera (the report, checked
//! in headless Chromium; head's row against `graft train`; the probe's last group against head),
//! on caltech101-20 (the probe), and on a 16-image cut for the bad-input cases, Ctrl-C, and the
//! reproducibility of `scratch`, which compare relies on.

use std::path::Path;
use std::process::{Command, Output};

#[path = "../../../tests/common/data.rs"]
mod data;
use data::shared;
#[path = "../../../tests/common/graft.rs"]
mod graft;
use graft::ok_json;

fn graft(args: &[&str], home: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_graft"));
    cmd.arg("-q")
        .args(args)
        .arg("--weights")
        .arg(shared("weights/efficientnet-lite0-57934424.pth"))
        .env("GRAFT_HOME", home)
        .env("GRAFT_OFFLINE", "1");
    cmd.output().expect("run graft")
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// 8 training and 4 validation images per class, cut from hymenoptera.
fn small_dataset(root: &Path) {
    data::hymenoptera_cut(root, 8, 4);
}

/// Opens `report` in headless Chromium through a page that inspects it once loaded, and
/// returns what that page found, the browser's console log and a screenshot's size.
fn chromium_check(report: &Path) -> (serde_json::Value, String, u64) {
    let dir = report.parent().expect("dir");
    let probe = dir.join("chromium-check.html");
    std::fs::write(
        &probe,
        r#"<!DOCTYPE html><html><body><iframe id="r" src="report.html" width="1200" height="3000"></iframe>
<pre id="out">pending</pre><script>
document.getElementById('r').addEventListener('load', () => {
  const d = document.getElementById('r').contentDocument;
  const imgs = [...d.images];
  const svgs = [...d.querySelectorAll('svg')];
  const result = {
    images: imgs.length,
    images_rendered: imgs.filter(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0).length,
    svgs: svgs.length,
    svgs_rendered: svgs.filter(s => s.getBoundingClientRect().width > 100 && s.querySelectorAll('circle,rect,polyline').length > 2).length,
    strategy_rows: d.querySelectorAll('#strategies tr').length,
    conclusion: (d.getElementById('conclusion') || {}).textContent || '',
  };
  document.getElementById('out').textContent = 'RESULT' + JSON.stringify(result) + 'END';
});
</script></body></html>"#,
    )
    .expect("write the check page");
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
        .expect("Chromium is installed (.ci/run installs Debian's chromium package)");
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--allow-file-access-from-files",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=10000",
    ];
    let url = format!("file://{}", probe.display());
    let dom = Command::new(chromium)
        .args(common)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("run chromium");
    let html = String::from_utf8_lossy(&dom.stdout);
    let result = html
        .split_once("RESULT")
        .and_then(|(_, r)| r.split_once("END"))
        .map(|(j, _)| j.replace("&quot;", "\"").replace("&amp;", "&"))
        .unwrap_or_else(|| {
            panic!(
                "no result from the check page: {html}\n{}",
                String::from_utf8_lossy(&dom.stderr)
            )
        });
    let png = dir.join("screenshot.png");
    let shot = Command::new(chromium)
        .args(common)
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,2400")
        .arg(format!("file://{}", report.display()))
        .output()
        .expect("run chromium");
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    (
        serde_json::from_str(&result).unwrap_or_else(|e| panic!("{e}: {result}")),
        String::from_utf8_lossy(&dom.stderr).into_owned(),
        size,
    )
}

#[test]
fn compare_on_hymenoptera_writes_a_report_that_renders_and_agrees_with_train_and_probe() {
    let home = tempfile::tempdir().expect("tmp");
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("cmp");
    let data = shared("data/hymenoptera");
    let data = data.to_str().expect("utf-8 path");
    let out = graft(
        &[
            "compare",
            "--json",
            "--data",
            data,
            "--out",
            dir.to_str().expect("utf-8"),
            "--strategies",
            "pretrained,head,partial:1",
            "--budget",
            "15",
        ],
        home.path(),
    );
    let results = ok_json(&out);
    for f in [
        "report.html",
        "report.md",
        "results.json",
        "compare.json",
        "plots/learning_curves.svg",
        "plots/accuracy_vs_time.svg",
        "plots/confusion.svg",
        "plots/per_class_accuracy.svg",
        "runs/head/result.json",
        "runs/partial-1/predictions.csv",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let rows = results["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["status"] == "ok"), "{rows:?}");
    let partial = &rows[2];
    assert!(partial["epochs_run"].as_u64().unwrap_or(0) >= 1);
    assert!(partial["trainable_params"].as_u64() > rows[1]["trainable_params"].as_u64());
    assert!(
        results["conclusion"]
            .as_str()
            .unwrap_or("")
            .starts_with("head reaches "),
        "{}",
        results["conclusion"]
    );
    assert_eq!(read_json(&dir.join("results.json")), results);

    // head's row is `graft train --strategy head` with the same seed.
    let train = ok_json(&graft(
        &[
            "train",
            "--json",
            "--data",
            data,
            "--out",
            tmp.path().join("t").to_str().expect("utf-8"),
        ],
        home.path(),
    ));
    assert_eq!(rows[1]["val_accuracy"], train["val_accuracy"]);
    assert_eq!(rows[1]["best_epoch"], train["best_epoch"]);

    // The probe: one accuracy per block group, the last equal to head's.
    let probe = ok_json(&graft(
        &[
            "probe",
            "--json",
            "--data",
            data,
            "--out",
            tmp.path().join("p").to_str().expect("utf-8"),
        ],
        home.path(),
    ));
    let groups = probe["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 9, "{probe}");
    // Both measured where decisions are taken: the carved selection split.
    assert_eq!(groups[8]["val_accuracy"], train["selection"]["accuracy"]);
    assert_eq!(probe["split"], "select");
    assert!(groups[0]["val_accuracy"].as_f64() < groups[8]["val_accuracy"].as_f64());
    assert!(tmp.path().join("p/probe.html").is_file());

    // The page in a real browser: every thumbnail decoded, every plot drawn, the table filled.
    let (seen, console, screenshot) = chromium_check(&dir.join("report.html"));
    let images = seen["images"].as_u64().unwrap_or(0);
    assert!(images >= 4, "{seen}");
    assert_eq!(seen["images_rendered"].as_u64(), Some(images), "{seen}");
    assert!(seen["svgs_rendered"].as_u64().unwrap_or(0) >= 5, "{seen}");
    assert_eq!(seen["strategy_rows"], 4, "{seen}");
    assert!(
        seen["conclusion"]
            .as_str()
            .unwrap_or("")
            .contains("head reaches")
    );
    let errors: Vec<&str> = console
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Failed to load"))
        .collect();
    assert!(errors.is_empty(), "console: {errors:?}");
    assert!(screenshot > 20_000, "screenshot of {screenshot} bytes");
}

#[test]
fn probe_on_caltech_gives_one_accuracy_per_group_and_its_last_is_heads() {
    let home = tempfile::tempdir().expect("tmp");
    let tmp = tempfile::tempdir().expect("tmp");
    let data = shared("data/caltech101-20");
    let data = data.to_str().expect("utf-8 path");
    let head = ok_json(&graft(
        &[
            "train",
            "--json",
            "--data",
            data,
            "--out",
            tmp.path().join("h").to_str().expect("utf-8"),
        ],
        home.path(),
    ));
    assert_eq!(
        (head["train_images"].as_u64(), head["val_images"].as_u64()),
        (Some(1059), Some(626)),
        "1249 training images, 190 of them (15% of each class) set apart to select on"
    );
    assert_eq!(head["selection"]["images"], 190);
    assert_eq!(head["val_split"], "test");
    let acc = head["val_accuracy"].as_f64().unwrap_or(0.0);
    assert!(acc >= 0.985, "test accuracy {acc}");
    assert!(head["val_top5"].as_f64() >= Some(acc));
    let probe = ok_json(&graft(
        &[
            "probe",
            "--json",
            "--data",
            data,
            "--out",
            tmp.path().join("p").to_str().expect("utf-8"),
        ],
        home.path(),
    ));
    let groups = probe["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 9, "{probe}");
    assert_eq!(groups[8]["val_accuracy"], head["selection"]["accuracy"]);
    assert_eq!(groups[8]["dim"], 1280);
    assert!(probe["recommendation"]["strategy"].is_string());
}

#[test]
fn compare_refuses_bad_input_before_writing_anything() {
    let home = tempfile::tempdir().expect("tmp");
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    small_dataset(&data);
    let data = data.to_str().expect("utf-8");
    let out_dir = tmp.path().join("cmp");
    let out = out_dir.to_str().expect("utf-8");

    let zero = graft(
        &["compare", "--data", data, "--out", out, "--budget", "0"],
        home.path(),
    );
    assert_eq!(zero.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&zero.stderr).contains("--budget"));
    assert!(!out_dir.exists(), "nothing is written for a refused budget");

    let tiny = tmp.path().join("tiny");
    for class in ["ants", "bees"] {
        std::fs::create_dir_all(tiny.join(class)).expect("mkdir");
        let src = shared("data/hymenoptera/train").join(class);
        let first = std::fs::read_dir(&src)
            .expect("read")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "jpg"))
            .expect("a jpg");
        std::fs::copy(&first, tiny.join(class).join("a.jpg")).expect("copy");
    }
    let small = graft(
        &[
            "compare",
            "--data",
            tiny.to_str().expect("utf-8"),
            "--out",
            out,
        ],
        home.path(),
    );
    assert_eq!(small.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&small.stderr);
    assert!(
        stderr.contains("tiny") && stderr.contains("split"),
        "{stderr}"
    );
    assert!(!out_dir.exists());

    std::fs::create_dir_all(&out_dir).expect("mkdir");
    std::fs::write(out_dir.join("notes.txt"), b"mine").expect("write");
    let taken = graft(&["compare", "--data", data, "--out", out], home.path());
    assert_eq!(taken.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&taken.stderr).contains("--force"));

    // A strategy that fails mid-way is tested through the library (an observer that fails
    // after an epoch): crates/graft-run/tests/compare_failure.rs.
}

/// `graft auto --json` on `data` into `run`; its JSON.
fn auto(data: &Path, run: &Path, epochs: &str, home: &Path) -> serde_json::Value {
    let (data, run) = (data.to_str().expect("utf-8"), run.to_str().expect("utf-8"));
    let args = [
        "auto", "--json", "--data", data, "--out", run, "--epochs", epochs,
    ];
    ok_json(&graft(&args, home))
}

#[test]
fn auto_chooses_from_the_evidence_trains_and_explains() {
    let home = tempfile::tempdir().expect("tmp");
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    small_dataset(&data);
    let run = tmp.path().join("auto");
    let out = auto(&data, &run, "5", home.path());
    // 8 images per class: too few to fine-tune (and a head already scores well on them).
    assert_eq!(out["strategy"], "head");
    assert!(
        ["few_images", "head_good_enough"].contains(&out["rule"].as_str().unwrap_or("")),
        "{out}"
    );
    assert!(
        out["explanation"]
            .as_str()
            .unwrap_or("")
            .contains("16 training images in 2 classes")
    );
    assert_eq!(out["probe"].as_array().map(Vec::len), Some(9));
    for f in [
        "auto.md",
        "auto.json",
        "result.json",
        "model.safetensors",
        "model.json",
        "probe/probe.json",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
}

/// With enough images per class and a head far from perfect (two classes that each hold ants
/// and bees alike, so nothing separates them), auto trains a fine-tuning candidate in full;
/// the head is not clearly better on 18 selection images, so the candidate is kept: copied
/// into the run directory, not trained a second time.
#[test]
fn auto_keeps_the_fine_tuning_candidate_it_trained_instead_of_training_it_twice() {
    let home = tempfile::tempdir().expect("tmp");
    let tmp = tempfile::tempdir().expect("tmp");
    let cut = tmp.path().join("cut");
    data::hymenoptera_cut(&cut, 60, 4);
    let data = tmp.path().join("data");
    for split in ["train", "val"] {
        for (i, image) in data::cut_images(&cut, split).iter().enumerate() {
            let class = data.join(split).join(["a", "b"][i % 2]);
            std::fs::create_dir_all(&class).expect("mkdir");
            std::fs::copy(image, class.join(format!("{i}.jpg"))).expect("copy");
        }
    }
    let run = tmp.path().join("auto");
    let out = auto(&data, &run, "1", home.path());
    assert_eq!(out["rule"], "fine_tune_measured", "{out}");
    assert_eq!(out["evidence"]["trial"]["strategy"], out["strategy"]);
    assert_eq!(out["evidence"]["select_images"], 18);
    assert_eq!(out["result"]["run_dir"], run.to_str().expect("utf-8"));
    let trial = run.join("trial");
    let (kept, trained) = (
        read_json(&run.join("result.json")),
        read_json(&trial.join("result.json")),
    );
    assert_eq!(kept["run_dir"], run.to_str().expect("utf-8"));
    // Trained once: a second training would have its own wall-clock figures.
    for key in ["val_accuracy", "seconds", "train_seconds"] {
        assert_eq!(kept[key], trained[key], "{key}");
    }
    let bytes = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    for f in [
        "model.safetensors",
        "model.json",
        "config.json",
        "predictions.csv",
        "metrics.jsonl",
    ] {
        assert!(bytes(&run.join(f)) == bytes(&trial.join(f)), "{f} differs");
    }
}

#[test]
fn scratch_runs_are_reproducible_with_the_same_seed() {
    let home = tempfile::tempdir().expect("tmp");
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    small_dataset(&data);
    let run = |name: &str| {
        let dir = tmp.path().join(name);
        ok_json(&graft(
            &[
                "train",
                "--json",
                "--strategy",
                "scratch",
                "--epochs",
                "1",
                "--data",
                data.to_str().expect("utf-8"),
                "--out",
                dir.to_str().expect("utf-8"),
            ],
            home.path(),
        ));
        // The whole trained model, header included: identical training, identical bytes.
        std::fs::read(dir.join("model.safetensors")).expect("model")
    };
    let (a, b) = (run("a"), run("b"));
    let differ: Vec<String> = safetensors::SafeTensors::deserialize(&a)
        .expect("safetensors")
        .tensors()
        .into_iter()
        .filter(|(name, view)| {
            safetensors::SafeTensors::deserialize(&b)
                .ok()
                .and_then(|t| t.tensor(name).ok().map(|w| w.data() != view.data()))
                .unwrap_or(true)
        })
        .map(|(name, _)| name)
        .collect();
    assert!(
        differ.is_empty(),
        "fresh weights must come from the seed; these differ: {differ:?}"
    );
    assert!(a == b, "model.safetensors is not byte-identical");
}

/// Ctrl-C (SIGINT) stops a compare with a line saying how to run it again (exit status 130),
/// and that command then completes.
#[test]
fn ctrl_c_stops_a_compare_with_how_to_run_it_again() {
    use std::process::Stdio;
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    small_dataset(&data);
    let out = tmp.path().join("cmp");
    let args = |force: bool| {
        let mut a = vec![
            "compare".to_string(),
            "--data".into(),
            data.display().to_string(),
            "--out".into(),
            out.display().to_string(),
            "--strategies".into(),
            "head,partial:1".into(),
            "--epochs".into(),
            "3".into(),
        ];
        if force {
            a.push("--force".into());
        }
        a
    };
    let child = graft::graft(home.path())
        .arg("-q")
        .args(args(false))
        .arg("--weights")
        .arg(shared("weights/efficientnet-lite0-57934424.pth"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn graft");
    // The line-up is written before the first strategy starts.
    let done = graft::interrupt_when(child, &|| out.join("compare.json").is_file());
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted:"), "{stderr}");
    assert!(stderr.contains("--force into the same --out"), "{stderr}");
    let again: Vec<String> = args(true);
    let again: Vec<&str> = again.iter().map(String::as_str).collect();
    let finished = graft(&again, home.path());
    assert!(
        finished.status.success(),
        "{}",
        String::from_utf8_lossy(&finished.stderr)
    );
    assert!(out.join("report.html").is_file());
}
