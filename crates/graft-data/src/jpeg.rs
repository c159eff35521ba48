//! JPEG decoding through libjpeg (mozjpeg's build of libjpeg-turbo's decoder), the library
//! under PIL: with the same IDCT and fancy chroma upsampling, pixels match what torchvision
//! users get, and pretrained accuracy with them. (zune-jpeg, the image crate's decoder, differs
//! by up to 4 levels and costs 0.2 top-1 points on imagenet-sample.)

use image::RgbImage;
use mozjpeg::{ColorSpace, Decompress};

/// Why libjpeg could not give RGB pixels.
pub enum JpegFailure {
    /// CMYK/YCCK: left to the image crate, which converts them.
    Unsupported,
    Corrupt(String),
    Truncated,
}

/// Decodes baseline or progressive JPEG data to RGB.
pub fn decode(data: &[u8]) -> Result<RgbImage, JpegFailure> {
    if !has_end_of_image(data) {
        // libjpeg pads a truncated stream with grey and only warns; PIL refuses it.
        return Err(JpegFailure::Truncated);
    }
    // libjpeg reports fatal errors by unwinding (mozjpeg's "unwinding" error manager).
    let decoded = std::panic::catch_unwind(|| -> std::io::Result<Option<RgbImage>> {
        let d = Decompress::new_mem(data)?;
        if matches!(d.color_space(), ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK) {
            return Ok(None);
        }
        let mut started = d.rgb()?;
        let (w, h) = (started.width() as u32, started.height() as u32);
        let pixels = started.read_scanlines::<u8>()?;
        started.finish()?;
        Ok(RgbImage::from_raw(w, h, pixels))
    });
    match decoded {
        Ok(Ok(Some(img))) => Ok(img),
        Ok(Ok(None)) => Err(JpegFailure::Unsupported),
        Ok(Err(e)) => Err(JpegFailure::Corrupt(e.to_string())),
        Err(payload) => Err(JpegFailure::Corrupt(
            payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "libjpeg failed".to_string()),
        )),
    }
}

/// Walks the marker segments and entropy-coded data to the EOI marker. A stream that ends
/// first is truncated.
pub fn has_end_of_image(data: &[u8]) -> bool {
    let mut i = 2; // after SOI
    while i + 1 < data.len() {
        if data[i] != 0xFF {
            // Entropy-coded data: skip to the next 0xFF byte.
            match memchr::memchr(0xFF, &data[i..]) {
                Some(k) => i += k,
                None => return false,
            }
            continue;
        }
        let marker = data[i + 1];
        match marker {
            0xD9 => return true,
            // Stuffed zero, fill bytes, restart markers, TEM: no length field.
            0x00 | 0xFF | 0xD0..=0xD7 | 0x01 => i += if marker == 0xFF { 1 } else { 2 },
            _ => {
                let Some(len) = data
                    .get(i + 2..i + 4)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
                else {
                    return false;
                };
                i += 2 + len;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_image_found_after_segments_and_scan_data() {
        // SOI, APP0 (len 4: 2 bytes payload), scan bytes with a stuffed FF00, EOI.
        let ok = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD9,
        ];
        assert!(has_end_of_image(&ok));
        assert!(!has_end_of_image(&ok[..ok.len() - 2]));
        // An EOI byte pair inside a segment payload does not count.
        let inside = [0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x04, 0xFF, 0xD9, 0x00];
        assert!(!has_end_of_image(&inside));
    }
}
