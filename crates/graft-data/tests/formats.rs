//! Every format and colour mode users bring decodes to the RGB that PIL's `convert("RGB")`
//! gives (fixtures: tests/fixtures/make_fixtures.py, `write_formats`).

use std::path::{Path, PathBuf};

use graft_data::{DecodeLimits, decode_rgb};

fn images() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/images")
}

fn check(name: &str, tolerance: i32) {
    let bytes = std::fs::read(images().join("expected_rgb.safetensors")).expect("expected");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let want: Vec<f32> = st
        .tensor(name)
        .expect("entry")
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let got =
        decode_rgb(&images().join(name), DecodeLimits::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.dimensions(), (16, 12), "{name}");
    let max = got
        .as_raw()
        .iter()
        .zip(&want)
        .map(|(a, b)| (*a as i32 - *b as i32).abs())
        .max()
        .unwrap_or(0);
    assert!(max <= tolerance, "{name}: max diff {max}");
}

#[test]
fn cmyk_jpeg_is_converted_to_rgb() {
    // Not decodable by libjpeg to RGB: goes through the image crate's CMYK conversion.
    check("cmyk.jpg", 2);
}

#[test]
fn lossless_webp_decodes_exactly() {
    check("lossless.webp", 0);
}

#[test]
fn bmp_decodes_exactly() {
    check("plain.bmp", 0);
}

#[test]
fn palette_png_decodes_exactly() {
    check("palette.png", 0);
}
