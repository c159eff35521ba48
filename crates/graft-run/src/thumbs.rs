//! Thumbnails for reports: small centre-cropped JPEGs, written once per image under the report
//! directory, so the report itself reads files and decodes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use graft_data::{DecodeLimits, decode_rgb};
use image::imageops::FilterType;

use crate::error::{Result, RunError};
use crate::observer::{Observer, ObserverExt};

const SIDE: u32 = 128;

fn thumbnail(image: &Path, out: &Path) -> Result<()> {
    let img = decode_rgb(image, DecodeLimits::default())?;
    let (w, h) = img.dimensions();
    let side = w.min(h).max(1);
    let crop =
        image::imageops::crop_imm(&img, (w - side) / 2, (h - side) / 2, side, side).to_image();
    let small = image::imageops::resize(&crop, SIDE, SIDE, FilterType::Triangle);
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 82)
        .encode_image(&small)
        .map_err(|e| RunError::Backend(format!("{}: cannot encode: {e}", out.display())))?;
    graft_spec::write_atomic(out, &bytes)?;
    Ok(())
}

/// Makes thumbnails under `dir/thumbs/` for `images` not yet in `made` (image path -> file
/// relative to `dir`). An image that cannot be thumbnailed is reported as a warning and left
/// out: the report then says the thumbnail is missing.
pub fn make(
    dir: &Path,
    images: &[PathBuf],
    made: &mut BTreeMap<String, String>,
    obs: &mut dyn Observer,
) {
    if let Err(e) = std::fs::create_dir_all(dir.join("thumbs")) {
        obs.warn(format!(
            "no thumbnails: cannot create {}: {e}",
            dir.join("thumbs").display()
        ));
        return;
    }
    for image in images {
        let key = image.display().to_string();
        if made.contains_key(&key) {
            continue;
        }
        let file = format!("thumbs/{:04}.jpg", made.len());
        match thumbnail(image, &dir.join(&file)) {
            Ok(()) => {
                made.insert(key, file);
            }
            Err(e) => obs.warn(format!("no thumbnail for {}: {e}", image.display())),
        }
    }
}
