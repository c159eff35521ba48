//! torchvision's evaluation transform, `Resize(s)`, `CenterCrop(c)`, `ToTensor()`,
//! `Normalize(mean, std)`, on PIL images: the same sizes, the same rounding, and PIL's
//! antialiased bilinear filter (fast_image_resize's convolution implements PIL's).

use std::borrow::Cow;
use std::path::Path;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use rayon::prelude::*;

use crate::{DataError, DecodeLimits, decode_rgb};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Preprocess {
    /// Shorter side after resizing.
    pub resize: u32,
    /// Side of the square center crop.
    pub crop: u32,
    /// Per-channel mean and std on 0..1 pixels.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub limits: DecodeLimits,
}

/// torchvision's `Resize(size)` output for an int size: the shorter side becomes `size`, the
/// longer one `int(size * long / short)` (truncated, as Python's `int`).
pub fn resized_dims(width: u32, height: u32, size: u32) -> (u32, u32) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let new_long = (size as u64 * long as u64 / short.max(1) as u64) as u32;
    if width <= height {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

/// torchvision's `Resize(size)`; an image whose shorter side already is `size` (the usual
/// upload) is borrowed as it is, not copied.
pub fn resize_shorter(img: &RgbImage, size: u32) -> Cow<'_, RgbImage> {
    let (w, h) = resized_dims(img.width(), img.height(), size);
    if (w, h) == img.dimensions() {
        return Cow::Borrowed(img);
    }
    Cow::Owned(resize_exact(img, w, h))
}

pub fn resize_exact(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    // Borrowed: a copy of the decoded image was 0.5% of strategy 2's time on hymenoptera.
    let src = ImageRef::new(img.width(), img.height(), img.as_raw(), PixelType::U8x3);
    let mut dst = Image::new(w, h, PixelType::U8x3);
    // The only errors are pixel-type and zero-size mismatches, which the arguments rule out.
    if let Ok(src) = src {
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        if Resizer::new().resize(&src, &mut dst, &options).is_ok()
            && let Some(out) = RgbImage::from_raw(w, h, dst.into_vec())
        {
            return out;
        }
    }
    image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle)
}

/// torchvision's `CenterCrop`: offsets `int(round((size - crop) / 2))` with Python's
/// round-half-to-even, zero padding where the image is smaller than the crop.
pub fn center_crop(img: &RgbImage, crop: u32) -> RgbImage {
    let mut out = RgbImage::new(crop, crop);
    let c = crop as usize;
    for_crop_rows(img, crop, |y, x0, src| {
        out.as_mut()[(y * c + x0) * 3..(y * c + x0) * 3 + src.len()].copy_from_slice(src)
    });
    out
}

/// Calls `row(y, x, pixels)` for every row `y` of a centre crop with the part of it that lies
/// inside the image: `pixels` (RGB bytes) go to columns `x..` of the crop. Rows and columns
/// outside the image are left to the caller's zero padding.
fn for_crop_rows(img: &RgbImage, crop: u32, mut row: impl FnMut(usize, usize, &[u8])) {
    let offset = |size: u32| -> i64 {
        let d = size as f64 - crop as f64;
        (d / 2.0).round_ties_even() as i64
    };
    let (top, left) = (offset(img.height()), offset(img.width()));
    let (w, h) = (img.width() as i64, img.height() as i64);
    // Columns of the crop that fall inside the image.
    let (x0, x1) = ((-left).max(0), (w - left).min(crop as i64));
    if x0 >= x1 {
        return;
    }
    let raw = img.as_raw();
    for y in 0..crop as i64 {
        let sy = y + top;
        if sy < 0 || sy >= h {
            continue;
        }
        let start = ((sy * w + x0 + left) * 3) as usize;
        let end = start + ((x1 - x0) * 3) as usize;
        row(y as usize, x0 as usize, &raw[start..end]);
    }
}

impl Preprocess {
    /// `[3, crop, crop]` channel-major floats, normalised.
    pub fn to_chw(&self, img: &RgbImage) -> Vec<f32> {
        let (w, h) = img.dimensions();
        let plane = (w * h) as usize;
        let mut out = vec![0f32; 3 * plane];
        let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * self.std[c]));
        let shift: [f32; 3] = std::array::from_fn(|c| self.mean[c] / self.std[c]);
        for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + i] = px[c] as f32 * scale[c] - shift[c];
            }
        }
        out
    }

    /// Resize, centre crop and normalise; the crop is read straight out of the resized image
    /// into the channel planes (no cropped copy).
    pub fn image(&self, img: &RgbImage) -> Vec<f32> {
        let c = self.crop as usize;
        let mut out = vec![0f32; 3 * c * c];
        self.image_into(img, &mut out);
        out
    }

    /// [`Preprocess::image`] written into `out` (`3 * crop * crop` values, whatever they held
    /// before), such as one image's slot of a batch.
    pub fn image_into(&self, img: &RgbImage, out: &mut [f32]) {
        let resized = resize_shorter(img, self.resize);
        let img: &RgbImage = &resized;
        let c = self.crop as usize;
        let plane = c * c;
        let scale: [f32; 3] = std::array::from_fn(|k| 1.0 / (255.0 * self.std[k]));
        let shift: [f32; 3] = std::array::from_fn(|k| self.mean[k] / self.std[k]);
        // Zero padding (a crop larger than the image) is 0 before normalisation, as in
        // torchvision. Without padding, the crop's rows cover every value.
        if img.width() < self.crop || img.height() < self.crop {
            for k in 0..3 {
                out[k * plane..(k + 1) * plane].fill(-shift[k]);
            }
        }
        for_crop_rows(img, self.crop, |y, x0, src| {
            for (i, px) in src.chunks_exact(3).enumerate() {
                let at = y * c + x0 + i;
                for k in 0..3 {
                    out[k * plane + at] = px[k] as f32 * scale[k] - shift[k];
                }
            }
        });
    }

    pub fn file(&self, path: &Path) -> Result<Vec<f32>, DataError> {
        Ok(self.image(&decode_rgb(path, self.limits)?))
    }

    /// [`Preprocess::file`] of an image in memory; `name` is what errors call it.
    pub fn bytes(&self, data: &[u8], name: &Path) -> Result<Vec<f32>, DataError> {
        Ok(self.image(&crate::image::decode_rgb_bytes(data, name, self.limits)?))
    }

    /// [`Preprocess::bytes`] written into `out` (see [`Preprocess::image_into`]).
    pub fn bytes_into(&self, data: &[u8], name: &Path, out: &mut [f32]) -> Result<(), DataError> {
        self.image_into(
            &crate::image::decode_rgb_bytes(data, name, self.limits)?,
            out,
        );
        Ok(())
    }

    /// Decodes and transforms `paths` in parallel; one result per path, in order.
    pub fn files(&self, paths: &[&Path]) -> Vec<Result<Vec<f32>, DataError>> {
        paths.par_iter().map(|p| self.file(p)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_follows_torchvision_rounding() {
        assert_eq!(resized_dims(500, 375, 256), (341, 256));
        assert_eq!(resized_dims(375, 500, 256), (256, 341));
        assert_eq!(resized_dims(256, 256, 256), (256, 256));
        assert_eq!(resized_dims(75, 56, 256), (342, 256));
    }

    #[test]
    fn the_fused_crop_equals_crop_then_normalise_including_zero_padding() {
        let p = Preprocess {
            resize: 40,
            crop: 32,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            limits: DecodeLimits::default(),
        };
        for (w, h, crop) in [(61, 45, 32), (45, 61, 32), (50, 40, 48), (40, 40, 40)] {
            let img = RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([(x * 7) as u8, (y * 5) as u8, (x + y) as u8])
            });
            let p = Preprocess { crop, ..p };
            let plain = p.to_chw(&center_crop(&resize_shorter(&img, p.resize), crop));
            assert_eq!(p.image(&img), plain, "{w}x{h} crop {crop}");
            // Into a slot that held something else (a batch's buffer): the same values.
            let mut slot = vec![f32::NAN; plain.len()];
            p.image_into(&img, &mut slot);
            assert_eq!(slot, plain, "{w}x{h} crop {crop}, into a used slot");
        }
    }

    #[test]
    fn center_crop_uses_round_half_even_offsets() {
        // width 341 - 224 = 117 -> offset round(58.5) = 58 (half to even)
        let mut img = RgbImage::new(341, 224);
        img.put_pixel(58, 0, image::Rgb([9, 9, 9]));
        assert_eq!(center_crop(&img, 224).get_pixel(0, 0).0, [9, 9, 9]);
    }

    #[test]
    fn normalisation_matches_tf_lite_formula() {
        let p = Preprocess {
            resize: 1,
            crop: 1,
            mean: [127.0 / 255.0; 3],
            std: [128.0 / 255.0; 3],
            limits: DecodeLimits::default(),
        };
        let img = RgbImage::from_raw(1, 1, vec![0, 127, 255]).unwrap_or_default();
        let v = p.to_chw(&img);
        for (got, want) in v.iter().zip([-127.0 / 128.0, 0.0, 1.0f32]) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }
}

/// torchvision's `RandomResizedCrop(size)` (scale 0.08-1, aspect 3/4-4/3, ten tries, then a
/// center crop fallback), `RandomHorizontalFlip`, and a mild `ColorJitter(0.2, 0.2, 0.2)`
/// (brightness, contrast, saturation; in that fixed order), driven by a seeded generator so a
/// cached augmented view can be recomputed exactly.
pub fn random_resized_crop_flip(img: &RgbImage, size: u32, seed: u64) -> RgbImage {
    let mut rng = graft_spec::SplitMix64(seed);
    let mut uniform = |lo: f64, hi: f64| lo + (hi - lo) * rng.unit();
    let (w, h) = (img.width() as f64, img.height() as f64);
    let area = w * h;
    let mut region = None;
    for _ in 0..10 {
        let target = area * uniform(0.08, 1.0);
        let ratio = uniform((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln()).exp();
        let cw = (target * ratio).sqrt().round();
        let ch = (target / ratio).sqrt().round();
        if cw >= 1.0 && ch >= 1.0 && cw <= w && ch <= h {
            let top = uniform(0.0, h - ch + 1.0).floor().min(h - ch);
            let left = uniform(0.0, w - cw + 1.0).floor().min(w - cw);
            region = Some((left as u32, top as u32, cw as u32, ch as u32));
            break;
        }
    }
    let (x, y, cw, ch) = region.unwrap_or_else(|| {
        let s = w.min(h) as u32;
        (((w as u32) - s) / 2, ((h as u32) - s) / 2, s, s)
    });
    let crop = image::imageops::crop_imm(img, x, y, cw, ch).to_image();
    let mut out = resize_exact(&crop, size, size);
    if uniform(0.0, 1.0) < 0.5 {
        image::imageops::flip_horizontal_in_place(&mut out);
    }
    let (b, c, s) = (uniform(0.8, 1.2), uniform(0.8, 1.2), uniform(0.8, 1.2));
    color_jitter(&mut out, b as f32, c as f32, s as f32);
    out
}

/// Brightness, contrast and saturation factors applied as torchvision's functional
/// `adjust_*` do: scale, blend with the mean grey level, blend with the greyscale image.
pub fn color_jitter(img: &mut RgbImage, brightness: f32, contrast: f32, saturation: f32) {
    let gray = |p: [f32; 3]| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
    let clamp = |v: f32| v.clamp(0.0, 255.0);
    let mut px: Vec<[f32; 3]> = img
        .pixels()
        .map(|p| p.0.map(|v| clamp(v as f32 * brightness)))
        .collect();
    let mean = px.iter().map(|p| gray(*p)).sum::<f32>() / px.len().max(1) as f32;
    for p in px.iter_mut() {
        *p = p.map(|v| clamp(mean + contrast * (v - mean)));
        let g = gray(*p);
        *p = p.map(|v| clamp(g + saturation * (v - g)));
    }
    for (dst, p) in img.pixels_mut().zip(px) {
        dst.0 = p.map(|v| v.round() as u8);
    }
}

/// Mirrors channel-major images (`[.., width]` rows) left to right, in place: the flipped
/// test-time view, taken of the preprocessed image as fastai and timm do.
pub fn mirror_rows(chw: &mut [f32], width: usize) {
    for row in chw.chunks_exact_mut(width.max(1)) {
        row.reverse();
    }
}

impl Preprocess {
    /// [`Preprocess::files`], each image mirrored left to right (see [`mirror_rows`]).
    pub fn mirrored_files(&self, paths: &[&Path]) -> Vec<Result<Vec<f32>, DataError>> {
        let mut out = self.files(paths);
        for chw in out.iter_mut().flatten() {
            mirror_rows(chw, self.crop as usize);
        }
        out
    }

    /// An augmented training view of `path` (see [`random_resized_crop_flip`]).
    pub fn augmented_file(&self, path: &Path, seed: u64) -> Result<Vec<f32>, DataError> {
        let img = decode_rgb(path, self.limits)?;
        Ok(self.to_chw(&random_resized_crop_flip(&img, self.crop, seed)))
    }
}

#[cfg(test)]
mod augment_tests {
    use super::*;

    #[test]
    fn mirror_rows_reverses_every_row_of_every_channel_and_twice_is_identity() {
        // 2 channels of 2 rows of 3.
        let mut x: Vec<f32> = (0..12).map(|v| v as f32).collect();
        mirror_rows(&mut x, 3);
        assert_eq!(x, [2., 1., 0., 5., 4., 3., 8., 7., 6., 11., 10., 9.]);
        mirror_rows(&mut x, 3);
        assert_eq!(x, (0..12).map(|v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn color_jitter_with_unit_factors_changes_nothing_and_zero_saturation_is_grey() {
        let img = RgbImage::from_fn(4, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 60, 200]));
        let mut same = img.clone();
        color_jitter(&mut same, 1.0, 1.0, 1.0);
        assert_eq!(same, img);
        let mut grey = img.clone();
        color_jitter(&mut grey, 1.0, 1.0, 0.0);
        assert!(grey.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));
    }

    #[test]
    fn augmented_view_is_deterministic_per_seed_and_sized() {
        let img = RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let a = random_resized_crop_flip(&img, 32, 5);
        assert_eq!(a.dimensions(), (32, 32));
        assert_eq!(a, random_resized_crop_flip(&img, 32, 5));
        assert_ne!(a, random_resized_crop_flip(&img, 32, 6));
    }
}
