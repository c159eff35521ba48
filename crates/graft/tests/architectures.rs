//! `graft train` works the same for ResNet-18, ResNet-50 and VGG-16: random weights in graft's
//! own layout stand in for torchvision's files, on a 12-image ImageFolder cut from hymenoptera.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use graft_models::{default_device, find_model};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(rel)
}

fn small_dataset(root: &Path) {
    for class in ["ants", "bees"] {
        let src = shared("data/hymenoptera/train").join(class);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&src)
            .expect("read")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        let dst = root.join(class);
        std::fs::create_dir_all(&dst).expect("mkdir");
        for f in files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
            .take(6)
        {
            std::fs::copy(f, dst.join(f.file_name().expect("name"))).expect("copy");
        }
    }
}

fn train_with_random_weights(model: &str) {
    let tmp = tempfile::tempdir().expect("tmp");
    let spec = find_model(model).expect("registry");
    let net = spec.arch.init(&default_device());
    let weights = tmp.path().join(format!("{model}.safetensors"));
    let mut store = SafetensorsStore::from_file(&weights)
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true);
    net.save_into(&mut store).expect("save weights");
    let data = tmp.path().join("data");
    small_dataset(&data);
    for strategy in ["head", "partial:1"] {
        let run = tmp
            .path()
            .join(format!("run-{}", strategy.replace(':', "-")));
        let out = Command::new(env!("CARGO_BIN_EXE_graft"))
            .args([
                "-q",
                "train",
                "--json",
                "--epochs",
                "2",
                "--model",
                model,
                "--strategy",
                strategy,
                "--weights",
            ])
            .arg(&weights)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&run)
            .env("GRAFT_HOME", tmp.path().join("home"))
            .env("GRAFT_OFFLINE", "1")
            .output()
            .expect("run graft");
        assert!(
            out.status.success(),
            "{model} {strategy}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let json: serde_json::Value =
            serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("json");
        assert_eq!(json["model"], model);
        assert_eq!(
            (json["train_images"].as_u64(), json["val_images"].as_u64()),
            (Some(8), Some(2)),
            "seeded 20% split, stratified: 1 of 6 per class; then 1 of the 5 left set apart to select on"
        );
        assert_eq!(json["epochs_run"], 2);
        // A VGG-16 run folder holds gigabytes (model, best checkpoint, optimizer state): free
        // it before the next strategy so the test's peak disk use stays one run.
        std::fs::remove_dir_all(&run).expect("remove run folder");
    }
}

#[test]
fn resnet18_trains_head_and_partial() {
    train_with_random_weights("resnet18");
}

#[test]
fn resnet50_trains_head_and_partial() {
    train_with_random_weights("resnet50");
}

#[test]
fn vgg16_trains_head_and_partial() {
    train_with_random_weights("vgg16");
}
