//! Hostile images and dataset files: refused with the file named, before any large allocation.

use std::path::{Path, PathBuf};

use graft_data::{DecodeLimits, SplitOptions, decode_rgb, open_dataset};

fn hostile(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/hostile")
        .join(name)
}

#[test]
fn images_claiming_100k_pixels_a_side_are_refused_from_the_header() {
    for name in ["huge.png", "huge.jpg"] {
        let err = decode_rgb(&hostile(name), DecodeLimits::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains(name) && err.contains("px a side"),
            "{name}: {err}"
        );
    }
}

#[test]
fn a_tiny_jpeg_claiming_18k_pixels_a_side_is_refused_before_decoding() {
    let err = decode_rgb(&hostile("forged_dims.jpg"), DecodeLimits::default())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("forged_dims.jpg") && err.contains("forged or truncated"),
        "{err}"
    );
}

/// A dataset folder with classes `ants` and `bees`, three (empty) images each.
fn two_classes() -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    for class in ["ants", "bees"] {
        std::fs::create_dir(dir.path().join(class))?;
        for i in 0..3 {
            std::fs::write(dir.path().join(format!("{class}/{i}.jpg")), b"x")?;
        }
    }
    Ok(dir)
}

#[test]
fn split_csv_lines_that_leave_the_dataset_are_refused() -> Result<(), Box<dyn std::error::Error>> {
    let dir = two_classes()?;
    for bad in [
        "ants/../../../etc/passwd",
        "/etc/passwd",
        "ants/../bees/0.jpg",
    ] {
        std::fs::write(
            dir.path().join("split.csv"),
            format!("path,split\nants/0.jpg,train\n{bad},val\n"),
        )?;
        let err = open_dataset(dir.path(), SplitOptions::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("split.csv:3") && err.contains("refused"),
            "{bad}: {err}"
        );
    }
    Ok(())
}

#[test]
fn a_symlink_loop_inside_a_class_folder_is_an_error() -> Result<(), Box<dyn std::error::Error>> {
    let dir = two_classes()?;
    let sub = dir.path().join("ants/more");
    std::fs::create_dir(&sub)?;
    std::os::unix::fs::symlink(dir.path().join("ants"), sub.join("loop"))?;
    let err = open_dataset(dir.path(), SplitOptions::default())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("loop"), "{err}");
    Ok(())
}
