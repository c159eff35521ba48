//! `graft export` end to end: trained runs (head and partial) and the real pretrained
//! EfficientNet-Lite0 exported to ONNX, run by a second runtime (tract) on real images, agree
//! with graft's own predictions; the safetensors export is a model `predict --run` reads.

#[path = "../../../tests/common/data.rs"]
mod data;
#[path = "../../../tests/common/graft.rs"]
mod graft;
#[path = "../../../tests/common/tract.rs"]
mod tract;
use graft::ok_json;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use graft_data::{DecodeLimits, Preprocess};
use graft_export::onnx::ModelProto;
use prost::Message;

fn graft(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .arg("-q")
        .args(args)
        .env("GRAFT_HOME", home)
        .env("GRAFT_OFFLINE", "1")
        .output()
        .expect("run graft")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The metadata of an ONNX file, by key.
fn metadata(onnx: &[u8]) -> std::collections::BTreeMap<String, String> {
    ModelProto::decode(onnx)
        .expect("an ONNX model")
        .metadata_props
        .into_iter()
        .map(|p| (p.key.unwrap_or_default(), p.value.unwrap_or_default()))
        .collect()
}

/// Images preprocessed as the exported file's metadata says.
fn pixels(
    meta: &std::collections::BTreeMap<String, String>,
    images: &[PathBuf],
) -> (Vec<f32>, usize) {
    let p: serde_json::Value = serde_json::from_str(&meta["preprocessing"]).expect("json");
    let f = |k: &str, i: usize| p[k][i].as_f64().expect("number") as f32;
    let pre = Preprocess {
        resize: p["resize"].as_u64().expect("resize") as u32,
        crop: p["crop"].as_u64().expect("crop") as u32,
        mean: [f("mean", 0), f("mean", 1), f("mean", 2)],
        std: [f("std", 0), f("std", 1), f("std", 2)],
        limits: DecodeLimits::default(),
    };
    let refs: Vec<&Path> = images.iter().map(PathBuf::as_path).collect();
    let x = pre
        .files(&refs)
        .into_iter()
        .flat_map(|r| r.expect("decodes"))
        .collect();
    (x, pre.crop as usize)
}

/// Each image's probability of each class, from `graft predict --json -k classes`.
fn graft_probs(pred: &serde_json::Value, classes: usize) -> Vec<Vec<f32>> {
    pred["predictions"]
        .as_array()
        .expect("predictions")
        .iter()
        .map(|p| {
            let mut row = vec![0.0; classes];
            for t in p["top"].as_array().expect("top") {
                row[t["index"].as_u64().expect("index") as usize] =
                    t["probability"].as_f64().expect("p") as f32;
            }
            row
        })
        .collect()
}

#[test]
fn trained_runs_export_to_onnx_that_a_second_runtime_runs_to_the_same_answers() {
    let home = tempfile::tempdir().expect("tmp");
    let tmp = tempfile::tempdir().expect("tmp");
    let data_dir = tmp.path().join("data");
    data::hymenoptera_cut(&data_dir, 8, 4);
    let weights = data::lite0_weights();
    let images = data::cut_images(&data_dir, "val");
    for strategy in ["head", "partial:1"] {
        let run = tmp.path().join(strategy.replace(':', "-"));
        let args = [
            "train",
            "--json",
            "--epochs",
            "2",
            "--strategy",
            strategy,
            "--weights",
            s(&weights),
            "--data",
            s(&data_dir),
            "--out",
            s(&run),
        ];
        let trained = ok_json(&graft(&args, home.path()));
        let onnx_path = tmp
            .path()
            .join(format!("{}.onnx", strategy.replace(':', "-")));
        ok_json(&graft(
            &[
                "export",
                s(&run),
                "--probabilities",
                "--out",
                s(&onnx_path),
                "--json",
            ],
            home.path(),
        ));
        let onnx = std::fs::read(&onnx_path).expect("written");
        let meta = metadata(&onnx);
        assert_eq!(meta["classes"], r#"["ants","bees"]"#);
        assert_eq!(meta["output"], "probabilities");
        assert_eq!(meta["strategy"], strategy);
        assert_eq!(meta["val_accuracy"], trained["val_accuracy"].to_string());
        let (x, size) = pixels(&meta, &images);
        let theirs = tract::run_batches(&onnx, &x, size, images.len());
        let mut args = vec!["predict", "--json", "-k", "2", "--run", s(&run)];
        args.extend(images.iter().map(|p| s(p)));
        let ours = graft_probs(&ok_json(&graft(&args, home.path())), 2);
        for (i, (a, b)) in theirs.chunks(2).zip(&ours).enumerate() {
            for (x, y) in a.iter().zip(b) {
                assert!(
                    (x - y).abs() < 1e-4,
                    "{strategy} image {i}: tract {a:?}, graft {b:?}"
                );
            }
        }
    }
}

#[test]
fn pretrained_lite0_exports_to_onnx_with_the_same_top1_on_imagenet_sample() {
    let home = tempfile::tempdir().expect("tmp");
    let tmp = tempfile::tempdir().expect("tmp");
    let weights = data::lite0_weights();
    let onnx_path = tmp.path().join("lite0.onnx");
    ok_json(&graft(
        &[
            "export",
            "--weights",
            s(&weights),
            "--out",
            s(&onnx_path),
            "--json",
        ],
        home.path(),
    ));
    let onnx = std::fs::read(&onnx_path).expect("written");
    let meta = metadata(&onnx);
    assert_eq!(meta["output"], "logits");
    let list = data::shared("data/imagenet-sample/labels.csv");
    let labelled = graft_data::read_list_file(&list).expect("labels");
    let images: Vec<PathBuf> = labelled.iter().map(|l| l.path.clone()).collect();
    let (x, size) = pixels(&meta, &images);
    let logits = tract::run_batches(&onnx, &x, size, 50);
    let wnids: Vec<String> = serde_json::from_str::<Vec<String>>(&meta["classes"])
        .expect("classes")
        .into_iter()
        .collect();
    assert_eq!(wnids.len(), 1000);
    let classes = graft_models::imagenet::classes();
    let mut correct = 0;
    for (row, item) in logits.chunks(1000).zip(&labelled) {
        let top = row
            .iter()
            .enumerate()
            .fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
        let truth = graft_models::imagenet::parse_label(&item.label).expect("a wnid");
        correct += usize::from(top == truth);
        assert_eq!(classes[top].name, wnids[top]);
    }
    let evaluated = ok_json(&graft(
        &[
            "evaluate",
            "--json",
            "--weights",
            s(&weights),
            "--data",
            s(&list),
        ],
        home.path(),
    ));
    let top1 = correct as f64 / labelled.len() as f64;
    assert_eq!(
        top1,
        evaluated["top1"].as_f64().expect("top1"),
        "ONNX top-1 {top1} vs graft's"
    );
}

#[test]
fn safetensors_export_is_a_model_predict_reads_and_keeps_the_original_names() {
    let home = tempfile::tempdir().expect("tmp");
    let tmp = tempfile::tempdir().expect("tmp");
    let weights = data::lite0_weights();
    let out = tmp.path().join("lite0/model.safetensors");
    ok_json(&graft(
        &[
            "export",
            "--format",
            "safetensors",
            "--weights",
            s(&weights),
            "--out",
            s(&out),
            "--json",
        ],
        home.path(),
    ));
    let bytes = std::fs::read(&out).expect("written");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let names = st.names();
    assert!(names.contains(&"_blocks.3._bn1.weight"), "original names");
    assert!(names.contains(&"_fc.weight"));
    let photo = data::shared("data/imagenet-sample/images/n01443537_goldfish.JPEG");
    let photo = if photo.exists() {
        photo
    } else {
        first_image(&data::shared("data/imagenet-sample"))
    };
    let as_run = ok_json(&graft(
        &[
            "predict",
            "--json",
            "--run",
            s(out.parent().expect("dir")),
            s(&photo),
        ],
        home.path(),
    ));
    let plain = ok_json(&graft(
        &["predict", "--json", "--weights", s(&weights), s(&photo)],
        home.path(),
    ));
    let top = |v: &serde_json::Value| -> Vec<(String, f64)> {
        v["predictions"][0]["top"]
            .as_array()
            .expect("top")
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap_or("").to_string(),
                    t["probability"].as_f64().unwrap_or(0.0),
                )
            })
            .collect()
    };
    let (a, b) = (top(&as_run), top(&plain));
    assert_eq!(
        a.iter().map(|x| &x.0).collect::<Vec<_>>(),
        b.iter().map(|x| &x.0).collect::<Vec<_>>()
    );
    for (x, y) in a.iter().zip(&b) {
        assert!((x.1 - y.1).abs() < 1e-5, "{a:?} vs {b:?}");
    }
}

fn first_image(dir: &Path) -> PathBuf {
    let (found, _) = graft_data::find_images(&[dir.to_path_buf()]).expect("images");
    found.into_iter().next().expect("an image")
}
