//! `graft train --strategy head` end to end on ../shared datasets: the accuracy targets, the run
//! directory, the warm cache, and reproducibility.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(rel)
}

fn train(data: &str, out: &Path, home: &Path, extra: &[&str]) -> Output {
    train_from(
        &shared("weights/efficientnet-lite0-57934424.pth"),
        data,
        out,
        home,
        extra,
    )
}

fn train_from(weights: &Path, data: &str, out: &Path, home: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(["-q", "train", "--json", "--weights"])
        .arg(weights)
        .arg("--data")
        .arg(shared(data))
        .arg("--out")
        .arg(out)
        .args(extra)
        .env("GRAFT_HOME", home)
        .env("GRAFT_OFFLINE", "1")
        .output()
        .expect("run graft")
}

fn summary(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn head_on_hymenoptera_reaches_the_pytorch_reference_and_reuses_its_cache() {
    let home = tempfile::tempdir().expect("tmp");
    let runs = tempfile::tempdir().expect("tmp");
    // A copy of the pretrained weights, deleted after training: the run must not need it.
    let weights = runs.path().join("lite0.pth");
    std::fs::copy(shared("weights/efficientnet-lite0-57934424.pth"), &weights).expect("copy");
    let first = summary(&train_from(
        &weights,
        "data/hymenoptera",
        &runs.path().join("a"),
        home.path(),
        &[],
    ));
    for key in [
        "strategy",
        "model",
        "train_images",
        "val_images",
        "val_accuracy",
        "best_epoch",
        "seconds",
        "run_dir",
    ] {
        assert!(first.get(key).is_some(), "{key} missing from {first}");
    }
    let acc = first["val_accuracy"].as_f64().unwrap_or(0.0);
    assert!(
        acc >= 0.945,
        "val accuracy {acc} (PyTorch, same recipe: 0.948)"
    );
    assert_eq!(first["val_images"], 153);
    // 208 training, 37 selection and 153 reported images, and the reported ones mirrored
    // (test-time augmentation, on by default).
    assert_eq!(first["tta"], "flip");
    assert_eq!(first["cache"]["computed"], 208 + 37 + 2 * 153);
    for f in [
        "config.json",
        "classes.json",
        "split.csv",
        "metrics.jsonl",
        "model.safetensors",
        "model.json",
        "resume/best_head.safetensors",
        "result.json",
    ] {
        assert!(
            runs.path().join("a").join(f).is_file(),
            "{f} missing from the run directory"
        );
    }

    // Warm cache: no image goes through the backbone again, and the run is quick.
    let t = Instant::now();
    let second = summary(&train_from(
        &weights,
        "data/hymenoptera",
        &runs.path().join("b"),
        home.path(),
        &[],
    ));
    assert!(
        t.elapsed().as_secs_f64() < 5.0,
        "warm run took {:?}",
        t.elapsed()
    );
    assert_eq!(second["cache"]["hits"], 208 + 37 + 2 * 153);
    assert_eq!(second["cache"]["computed"], 0);
    // Same seed, same data: the same result, epoch by epoch (all but the wall-clock seconds).
    let metrics = |d: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(runs.path().join(d).join("metrics.jsonl"))
            .expect("metrics")
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).expect("json");
                v.as_object_mut().map(|o| o.remove("seconds"));
                v
            })
            .collect()
    };
    assert_eq!(metrics("a"), metrics("b"));
    assert_eq!(first["val_accuracy"], second["val_accuracy"]);
    // Identical training writes a byte-identical model (it can be content-addressed).
    let model =
        |d: &str| std::fs::read(runs.path().join(d).join("model.safetensors")).expect("model");
    assert_eq!(
        model("a"),
        model("b"),
        "model.safetensors differs between identical runs"
    );
    assert_eq!(
        std::fs::read(runs.path().join("a/model.json")).expect("card"),
        std::fs::read(runs.path().join("b/model.json")).expect("card")
    );
    std::fs::remove_file(&weights).expect("delete the pretrained weights");

    // The run directory is a model, without the pretrained file: evaluate --run reproduces the
    // accuracy, predict --run names the user's classes.
    let graft = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_graft"))
            .args(args)
            .env("GRAFT_HOME", home.path())
            .env("GRAFT_OFFLINE", "1")
            .output()
            .expect("run")
    };
    let run = runs.path().join("a");
    let data = shared("data/hymenoptera");
    let eval = summary(&graft(&[
        "-q",
        "evaluate",
        "--json",
        "--run",
        run.to_str().unwrap_or_default(),
        "--data",
        data.to_str().unwrap_or_default(),
    ]));
    assert_eq!(eval["accuracy"], first["val_accuracy"]);
    assert_eq!(eval["n"], 153);
    let bee = shared("data/hymenoptera/val/bees/1032546534_06907fe3b3.jpg");
    let pred = summary(&graft(&[
        "-q",
        "predict",
        "--json",
        "--run",
        run.to_str().unwrap_or_default(),
        bee.to_str().unwrap_or_default(),
    ]));
    assert_eq!(pred["predictions"][0]["top"][0]["name"], "bees");
}

#[test]
fn existing_run_directory_is_refused_without_force() {
    let home = tempfile::tempdir().expect("tmp");
    let runs = tempfile::tempdir().expect("tmp");
    std::fs::write(runs.path().join("notes.txt"), b"mine").expect("write");
    let out = train("data/hymenoptera", runs.path(), home.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(
        std::fs::read(runs.path().join("notes.txt")).expect("kept"),
        b"mine"
    );
}

#[test]
fn partial_two_trains_the_top_groups_and_its_run_evaluates_the_same() {
    let home = tempfile::tempdir().expect("tmp");
    let runs = tempfile::tempdir().expect("tmp");
    let run = runs.path().join("p");
    let s = summary(&train(
        "data/hymenoptera",
        &run,
        home.path(),
        &["--strategy", "partial:2", "--epochs", "2"],
    ));
    assert_eq!(s["trained_groups"], serde_json::json!(["stage7", "top"]));
    assert_eq!(s["epochs_run"], 2);
    let acc = s["val_accuracy"].as_f64().unwrap_or(0.0);
    assert!(acc > 0.8, "partial:2 after 2 epochs: {acc}");
    for f in [
        "model.safetensors",
        "model.json",
        "resume/best_backbone.safetensors",
        "resume/best_head.safetensors",
    ] {
        assert!(run.join(f).is_file(), "{f}");
    }
    let eval = Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(["-q", "evaluate", "--json", "--run"])
        .arg(&run)
        .arg("--data")
        .arg(shared("data/hymenoptera"))
        .env("GRAFT_HOME", home.path())
        .env("GRAFT_OFFLINE", "1")
        .output()
        .expect("run");
    assert_eq!(
        summary(&eval)["accuracy"],
        s["val_accuracy"],
        "the saved best model is the one that scored"
    );
}

#[test]
fn partial_with_more_groups_than_the_model_has_names_them() {
    let home = tempfile::tempdir().expect("tmp");
    let runs = tempfile::tempdir().expect("tmp");
    let out = train(
        "data/hymenoptera",
        &runs.path().join("p"),
        home.path(),
        &["--strategy", "partial:12"],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("partial:12") && stderr.contains("has 9") && stderr.contains("stage7"),
        "{stderr}"
    );
}

#[test]
fn pretrained_strategy_maps_imagenet_ant_and_bee_onto_the_users_classes() {
    let home = tempfile::tempdir().expect("tmp");
    let runs = tempfile::tempdir().expect("tmp");
    let run = runs.path().join("pre");
    let s = summary(&train(
        "data/hymenoptera",
        &run,
        home.path(),
        &["--strategy", "pretrained"],
    ));
    assert_eq!(s["epochs_run"], 0);
    let acc = s["val_accuracy"].as_f64().unwrap_or(0.0);
    assert!(
        acc > 0.95,
        "ImageNet's own ant/bee classes on hymenoptera val: {acc}"
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).expect("config"))
            .expect("json");
    assert_eq!(config["class_map"][0]["imagenet"][0]["wnid"], "n02219486");
    assert_eq!(config["class_map"][1]["imagenet"][0]["wnid"], "n02206856");

    // A class with no ImageNet counterpart needs a map, and the error says so.
    let out = train(
        "data/caltech101-20",
        &runs.path().join("c"),
        home.path(),
        &["--strategy", "pretrained"],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("brain") && stderr.contains("--class-map"),
        "{stderr}"
    );
}

#[test]
fn cached_augmented_views_are_computed_once_and_reused() {
    let home = tempfile::tempdir().expect("tmp");
    let runs = tempfile::tempdir().expect("tmp");
    let args = ["--cached-views", "2", "--epochs", "6"];
    let first = summary(&train(
        "data/hymenoptera",
        &runs.path().join("v1"),
        home.path(),
        &args,
    ));
    // Two augmented views of the 208 training images, the evaluation view of the 37 set apart
    // to select on, and the 153 reported on with their mirror images.
    assert_eq!(first["cache"]["computed"], 2 * 208 + 37 + 2 * 153);
    assert!(
        first["val_accuracy"].as_f64().unwrap_or(0.0) > 0.9,
        "{first}"
    );
    let second = summary(&train(
        "data/hymenoptera",
        &runs.path().join("v2"),
        home.path(),
        &args,
    ));
    assert_eq!(second["cache"]["computed"], 0);
    assert_eq!(
        second["val_accuracy"], first["val_accuracy"],
        "augmentation is seeded: same views, same result"
    );
}

#[test]
fn tta_flip_averages_each_reported_image_with_its_mirror_and_none_does_not() {
    let home = tempfile::tempdir().expect("tmp");
    let runs = tempfile::tempdir().expect("tmp");
    let run = |name: &str, tta: &str| {
        let out = runs.path().join(name);
        let s = summary(&train(
            "data/hymenoptera",
            &out,
            home.path(),
            &["--head-solver", "lbfgs", "--tta", tta],
        ));
        let predictions = std::fs::read_to_string(out.join("predictions.csv")).expect("csv");
        (s, predictions)
    };
    let (plain, plain_rows) = run("none", "none");
    assert_eq!(plain["tta"], "none");
    assert_eq!(plain["cache"]["computed"], 245 + 153);
    let (flip, flip_rows) = run("flip", "flip");
    assert_eq!(flip["tta"], "flip");
    // Only the mirrored view of the reported images is new.
    assert_eq!(flip["cache"]["computed"], 153);
    assert_eq!(
        flip["selection"], plain["selection"],
        "TTA takes no decision"
    );
    assert_ne!(
        plain_rows, flip_rows,
        "the mirrored view changed no reported probability"
    );
    // The plain view is the same model's: averaging moves each image's confidence by at most
    // half the distance to the mirrored view's, so the figures stay close.
    let (a, b) = (
        plain["val_accuracy"].as_f64().unwrap_or(0.0),
        flip["val_accuracy"].as_f64().unwrap_or(0.0),
    );
    assert!(a > 0.9 && b > 0.9, "{a} {b}");
}

#[test]
fn head_first_starts_partial_from_the_linear_probe() {
    let home = tempfile::tempdir().expect("tmp");
    let runs = tempfile::tempdir().expect("tmp");
    let first_loss = |name: &str, extra: &[&str]| {
        let out = runs.path().join(name);
        let mut args = vec!["--strategy", "partial:1", "--epochs", "1"];
        args.extend_from_slice(extra);
        summary(&train("data/hymenoptera", &out, home.path(), &args));
        let config = std::fs::read_to_string(out.join("config.json")).expect("config");
        let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics");
        let line: serde_json::Value =
            serde_json::from_str(metrics.lines().next().unwrap_or_default()).expect("json");
        (config, line["train_loss"].as_f64().unwrap_or(f64::NAN))
    };
    let (config, random) = first_loss("random", &[]);
    assert!(config.contains("\"head_first\": false"), "{config}");
    let (config, probed) = first_loss("probed", &["--head-first"]);
    assert!(config.contains("\"head_first\": true"), "{config}");
    // A head that already separates the classes starts the fine-tuning far lower (0.27 against
    // 0.65 at epoch 1 on hymenoptera's partial:2).
    assert!(
        probed < 0.75 * random,
        "first-epoch loss {probed} vs {random}"
    );

    let out = train(
        "data/hymenoptera",
        &runs.path().join("mlp"),
        home.path(),
        &["--strategy", "partial:1", "--head-first", "--head", "mlp"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("--head-first"),
        "{stderr}"
    );
}
