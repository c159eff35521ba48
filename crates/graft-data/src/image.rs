//! Decoding any common image file to 8-bit RGB, as PIL's `Image.open(p).convert("RGB")` does,
//! plus EXIF orientation, with limits that refuse decompression bombs before allocating.

use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

use crate::DataError;
use crate::jpeg::JpegFailure;

/// Refuse images above these before decoding any pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    pub max_side: u32,
    /// Decoded bytes (PIL's decompression-bomb error fires near 179 Mpixel; 16-bit RGBA needs
    /// 8 bytes a pixel).
    pub max_bytes: u64,
    /// Above `ratio_floor` decoded bytes, at most this many decoded bytes per byte of file.
    /// A baseline JPEG spends at least one bit on each 8x8 block, so its RGB pixels are at most
    /// 1,536 times its size; a header claiming more (a 600-byte file claiming 18,000 px a
    /// side, which decoders fill with grey for seconds and gigabytes) is forged or truncated.
    pub max_ratio: u64,
    pub ratio_floor: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_side: 20_000,
            max_bytes: 1 << 30,
            max_ratio: 2048,
            ratio_floor: 64 << 20,
        }
    }
}

pub fn decode_rgb(path: &Path, limits: DecodeLimits) -> Result<RgbImage, DataError> {
    let data = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.into(),
        source,
    })?;
    decode_rgb_bytes(&data, path, limits)
}

/// Whether `data` looks like an image that [`decode_rgb_bytes`] would take: its header names a
/// known format, and the size it claims is within `limits`. Reads the header only (no pixels),
/// so a server can refuse junk and decompression bombs before queueing them; a file that is
/// corrupt further in still fails when decoded.
pub fn check_image_header(data: &[u8], name: &Path, limits: DecodeLimits) -> Result<(), DataError> {
    open(data, name, limits).map(|_| ())
}

/// The decoder of `data` with its header read and checked against `limits`, and its format.
fn open<'a>(
    data: &'a [u8],
    path: &Path,
    limits: DecodeLimits,
) -> Result<(impl ImageDecoder + 'a, image::ImageFormat), DataError> {
    if data.is_empty() {
        return Err(DataError::Empty { path: path.into() });
    }
    // By content, not extension: users rename files, and a text file called .png is no image.
    let head = &data[..data.len().min(64)];
    let format = image::guess_format(head).map_err(|_| DataError::NotAnImage {
        path: path.into(),
        detail: "unrecognised file contents".into(),
    })?;
    let mut reader = ImageReader::new(std::io::Cursor::new(data));
    reader.set_format(format);
    let decoder = reader.into_decoder().map_err(|e| classify(path, e))?;
    let (width, height) = decoder.dimensions();
    if let Some(limit) = over_limit(width, height, decoder.total_bytes(), data.len(), limits) {
        return Err(DataError::TooLarge {
            path: path.into(),
            width,
            height,
            limit,
        });
    }
    Ok((decoder, format))
}

/// [`decode_rgb`] of an image already in memory (an upload); `name` is what errors call it.
pub fn decode_rgb_bytes(
    data: &[u8],
    name: &Path,
    limits: DecodeLimits,
) -> Result<RgbImage, DataError> {
    let path = name;
    let (mut decoder, format) = open(data, path, limits)?;
    let is_jpeg = format == image::ImageFormat::Jpeg;
    // Only the header has been read so far; the orientation tag is in it.
    let orientation = decoder.orientation().map_err(|e| classify(path, e))?;
    if is_jpeg {
        match crate::jpeg::decode(data) {
            Ok(rgb) => {
                let mut img = DynamicImage::ImageRgb8(rgb);
                img.apply_orientation(orientation);
                return Ok(img.into_rgb8());
            }
            Err(JpegFailure::Truncated) => {
                return Err(DataError::Corrupt {
                    path: path.into(),
                    detail: "truncated: the JPEG data ends before its end-of-image marker".into(),
                });
            }
            Err(JpegFailure::Corrupt(detail)) => {
                return Err(DataError::Corrupt {
                    path: path.into(),
                    detail,
                });
            }
            Err(JpegFailure::Unsupported) => {} // CMYK: the image crate converts it below.
        }
    }
    let mut hard = Limits::default();
    hard.max_alloc = Some(limits.max_bytes);
    decoder.set_limits(hard).map_err(|e| classify(path, e))?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| classify(path, e))?;
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

/// Which limit a header claiming `width` x `height` (`decoded` bytes) from a `file_len`-byte
/// file breaks, said as the limit; `None` when it breaks none.
fn over_limit(
    width: u32,
    height: u32,
    decoded: u64,
    file_len: usize,
    limits: DecodeLimits,
) -> Option<String> {
    if width > limits.max_side || height > limits.max_side || decoded > limits.max_bytes {
        return Some(format!(
            "{} px a side or {} MiB decoded",
            limits.max_side,
            limits.max_bytes >> 20
        ));
    }
    let budget = (file_len as u64)
        .saturating_mul(limits.max_ratio)
        .max(limits.ratio_floor);
    (decoded > budget).then(|| {
        format!(
            "{} decoded bytes a file byte above {} MiB (this {file_len}-byte file claims {} MiB: \
             a forged or truncated header)",
            limits.max_ratio,
            limits.ratio_floor >> 20,
            decoded >> 20
        )
    })
}

fn classify(path: &Path, e: image::ImageError) -> DataError {
    match e {
        image::ImageError::Unsupported(u) => DataError::NotAnImage {
            path: path.into(),
            detail: u.to_string(),
        },
        image::ImageError::IoError(source)
            if source.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            DataError::Corrupt {
                path: path.into(),
                detail: "the file ends before the image does".into(),
            }
        }
        image::ImageError::Limits(l) => DataError::TooLarge {
            path: path.into(),
            width: 0,
            height: 0,
            limit: l.to_string(),
        },
        other => DataError::Corrupt {
            path: path.into(),
            detail: other.to_string(),
        },
    }
}
