//! graft's side of `bench/run.sh pipeline`: decode + resize 256 + centre crop 224 + normalize every
//! image under DIR, in batches of 32 decoded in parallel (RAYON_NUM_THREADS workers), as
//! `graft train` feeds its frozen backbone. Prints one JSON line.
//!
//! cargo run --release -p graft-data --example bench_pipeline -- DIR [NAME]

use std::path::{Path, PathBuf};
use std::time::Instant;

use graft_data::{DecodeLimits, Preprocess, find_images};

#[path = "../../../bench/rss.rs"]
mod rss;
use rss::peak_rss_mib;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: bench_pipeline DIR [NAME]")?,
    );
    let name = std::env::args()
        .nth(2)
        .unwrap_or_else(|| dir.display().to_string());
    let (mut images, _) = find_images(std::slice::from_ref(&dir))?;
    images.sort();
    let p = Preprocess {
        resize: 256,
        crop: 224,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        limits: DecodeLimits::default(),
    };
    let start = Instant::now();
    let (mut ok, mut failed, mut checksum) = (0usize, 0usize, 0f64);
    for chunk in images.chunks(32) {
        let refs: Vec<&Path> = chunk.iter().map(PathBuf::as_path).collect();
        for r in p.files(&refs) {
            match r {
                Ok(v) => {
                    ok += 1;
                    checksum += v[0] as f64;
                }
                Err(_) => failed += 1,
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"impl\":\"graft\",\"data\":\"{name}\",\"images\":{ok},\"failed\":{failed},\"images_per_second\":{:.2},\"peak_rss_mib\":{:.1},\"checksum\":{checksum:.3}}}",
        ok as f64 / secs,
        peak_rss_mib()
    );
    Ok(())
}
