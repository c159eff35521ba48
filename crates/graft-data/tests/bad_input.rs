//! Files users really have that are not good images: each gives a clear error naming the file.

use std::path::{Path, PathBuf};

use graft_data::{DataError, DecodeLimits, decode_rgb};

mod png_bomb;
use png_bomb::write_png_bomb;

fn shared_jpeg() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/imagenet-sample/images/n01440764_tench.JPEG")
}

fn decode(path: &Path) -> Result<image::RgbImage, DataError> {
    decode_rgb(path, DecodeLimits::default())
}

#[test]
fn empty_file_is_named_and_called_empty() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("empty.jpg");
    std::fs::write(&p, b"").expect("write");
    let err = decode(&p).expect_err("empty");
    assert!(matches!(err, DataError::Empty { .. }));
    assert!(err.to_string().contains("empty.jpg"), "{err}");
}

#[test]
fn text_file_with_image_extension_is_not_an_image() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("notes.png");
    std::fs::write(&p, b"these are my notes, not a picture").expect("write");
    let err = decode(&p).expect_err("text");
    assert!(matches!(err, DataError::NotAnImage { .. }), "{err}");
    assert!(err.to_string().contains("notes.png"), "{err}");
}

#[test]
fn truncated_jpeg_is_refused_not_padded_with_grey() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("half.jpg");
    let bytes = std::fs::read(shared_jpeg()).expect("shared image");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).expect("write");
    let err = decode(&p).expect_err("truncated");
    assert!(matches!(err, DataError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains("half.jpg") && err.to_string().contains("truncated"),
        "{err}"
    );
}

#[test]
fn corrupt_jpeg_header_is_reported() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("corrupt.jpg");
    let mut bytes = std::fs::read(shared_jpeg()).expect("shared image");
    // Overwrite the frame and table segments after SOI with garbage, keep the EOI.
    for b in bytes.iter_mut().skip(2).take(600) {
        *b = 0x5A;
    }
    std::fs::write(&p, &bytes).expect("write");
    let err = decode(&p).expect_err("corrupt");
    assert!(err.to_string().contains("corrupt.jpg"), "{err}");
}

#[test]
fn decompression_bomb_png_is_refused_before_decoding() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("bomb.png");
    write_png_bomb(&p);
    assert!(std::fs::metadata(&p).expect("meta").len() < 1 << 20);
    let err = decode(&p).expect_err("bomb");
    assert!(
        matches!(
            err,
            DataError::TooLarge {
                width: 30_000,
                height: 30_000,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("bomb.png"), "{err}");
}

#[test]
fn grayscale_palette_and_alpha_images_become_rgb() {
    let dir = tempfile::tempdir().expect("tmp");
    let gray = dir.path().join("g.png");
    image::GrayImage::from_pixel(4, 3, image::Luma([200]))
        .save(&gray)
        .expect("save");
    let rgba = dir.path().join("a.png");
    image::RgbaImage::from_pixel(4, 3, image::Rgba([10, 20, 30, 0]))
        .save(&rgba)
        .expect("save");
    let g16 = dir.path().join("g16.png");
    image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_pixel(2, 2, image::Luma([65535]))
        .save(&g16)
        .expect("save");
    assert_eq!(
        decode(&gray).expect("gray").get_pixel(0, 0).0,
        [200, 200, 200]
    );
    // Like PIL's convert("RGB"): alpha is dropped, not composited.
    assert_eq!(decode(&rgba).expect("rgba").get_pixel(3, 2).0, [10, 20, 30]);
    assert_eq!(
        decode(&g16).expect("16-bit").get_pixel(1, 1).0,
        [255, 255, 255]
    );
    // The placeholder GIF in hymenoptera (palette mode) decodes too.
    let gif = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/hymenoptera/train/ants/imageNotFound.gif");
    assert_eq!(decode(&gif).expect("gif").dimensions(), (300, 300));
}

#[test]
fn exif_orientation_is_applied() {
    // A 2x1 JPEG is hard to hand-craft with EXIF; rotate a real one through the tag instead.
    let src = decode(&shared_jpeg()).expect("decode");
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("rotated.jpg");
    let bytes = std::fs::read(shared_jpeg()).expect("read");
    // APP1 Exif segment, little-endian TIFF, one IFD entry: Orientation (0x0112) = 6 (90 CW).
    let tiff: Vec<u8> = [
        &b"II*\0"[..],
        &8u32.to_le_bytes(),
        &1u16.to_le_bytes(),
        &0x0112u16.to_le_bytes(),
        &3u16.to_le_bytes(),
        &1u32.to_le_bytes(),
        &6u16.to_le_bytes(),
        &[0, 0],
        &0u32.to_le_bytes(),
    ]
    .concat();
    let payload = [&b"Exif\0\0"[..], &tiff].concat();
    let mut out = bytes[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&bytes[2..]);
    std::fs::write(&p, out).expect("write");
    let rotated = decode(&p).expect("decode rotated");
    assert_eq!(rotated.dimensions(), (src.height(), src.width()));
    // 90 degrees clockwise: the source's bottom-left pixel becomes the top-left one.
    assert_eq!(rotated.get_pixel(0, 0), src.get_pixel(0, src.height() - 1));
}
