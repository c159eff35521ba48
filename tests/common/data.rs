//! Paths into ../shared and small datasets cut from it, for the test crates that train on real
//! images (included with `#[path]`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `rel` under the `shared/` folder beside the checkout.
pub fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(rel)
}

pub fn lite0_weights() -> PathBuf {
    shared("weights/efficientnet-lite0-57934424.pth")
}

/// An ImageFolder with `train/` and `val/` cut from hymenoptera's training images: `train`
/// then `val` images per class, the first in file-name order.
pub fn hymenoptera_cut(root: &Path, train: usize, val: usize) {
    for (split, skip, take) in [("train", 0, train), ("val", train, val)] {
        for class in ["ants", "bees"] {
            let src = shared("data/hymenoptera/train").join(class);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&src)
                .expect("read")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
                .collect();
            files.sort();
            let dst = root.join(split).join(class);
            std::fs::create_dir_all(&dst).expect("mkdir");
            for f in files.iter().skip(skip).take(take) {
                std::fs::copy(f, dst.join(f.file_name().expect("name"))).expect("copy");
            }
        }
    }
}

/// The images of `split` in a [`hymenoptera_cut`] folder, sorted.
pub fn cut_images(root: &Path, split: &str) -> Vec<PathBuf> {
    let mut images: Vec<PathBuf> = ["ants", "bees"]
        .iter()
        .flat_map(|c| {
            std::fs::read_dir(root.join(split).join(c))
                .expect("ls")
                .flatten()
                .map(|e| e.path())
        })
        .collect();
    images.sort();
    images
}
