//! Resize + center crop agree with torchvision's `Resize(256)` + `CenterCrop(224)` on PIL images
//! (fixtures made by tests/fixtures/make_fixtures.py from ../shared images).

use std::path::Path;

use graft_data::transform::{center_crop, resize_shorter};
use graft_data::{DecodeLimits, decode_rgb};

fn check(name: &str, shared_rel: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let src = decode_rgb(
        &root.join("../shared").join(shared_rel),
        DecodeLimits::default(),
    )
    .expect("decode source");
    let want = image::open(root.join(format!("tests/fixtures/preprocess/{name}.png")))
        .expect("fixture")
        .into_rgb8();
    let got = center_crop(&resize_shorter(&src, 256), 224);
    assert_eq!(got.dimensions(), want.dimensions(), "{name}");
    let diffs: Vec<i32> = got
        .as_raw()
        .iter()
        .zip(want.as_raw())
        .map(|(a, b)| (*a as i32 - *b as i32).abs())
        .collect();
    let max = diffs.iter().copied().max().unwrap_or(0);
    let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
    // Decoding is libjpeg's, as under PIL (the unresized tench is bit-exact); the resize filter is
    // PIL's, with fixed-point rounding that differs by one level at some pixels (measured: mean
    // 0.20 upsampling the 75x56 tusker, 0.10 downsampling the 2592x1944 photo).
    assert!(
        max <= 1 && mean < 0.25,
        "{name}: max diff {max}, mean {mean}"
    );
}

#[test]
fn resize_and_crop_match_torchvision_on_a_256px_image() {
    check("tench", "data/imagenet-sample/images/n01440764_tench.JPEG");
}

#[test]
fn resize_and_crop_match_torchvision_when_upsampling_a_tiny_image() {
    check(
        "tusker_small",
        "data/imagenet-sample/images/n01871265_tusker.JPEG",
    );
}

#[test]
fn resize_and_crop_match_torchvision_when_downsampling_a_large_photo() {
    check(
        "ants_large",
        "data/hymenoptera/val/ants/ants-devouring-remains-of-large-dead-insect-on-red-tile-in-Stellenbosch-South-Africa-closeup-1-DHD.jpg",
    );
}
