//! Says when libjpeg-turbo's SIMD decoder cannot be built. Without `nasm`, mozjpeg-sys falls
//! back to libjpeg's C code: the same pixels, but decoding takes about twice as long (15% of a
//! cold `graft train --strategy head` on hymenoptera went to the C IDCT and colour conversion).
//! mozjpeg-sys says so itself, but cargo shows build-script warnings only for the workspace's
//! own packages, so nobody saw it.
fn main() {
    println!("cargo:rerun-if-env-changed=PATH");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let needs_nasm = arch == "x86_64" || arch == "x86";
    if needs_nasm
        && std::process::Command::new("nasm")
            .arg("-v")
            .output()
            .is_err()
    {
        println!(
            "cargo:warning=nasm is not installed, so JPEG decoding uses libjpeg's C fallback \
             (same pixels, about half as fast). Install nasm (apt-get install nasm, brew \
             install nasm), then run `cargo clean -p mozjpeg-sys -p graft-data` and build again."
        );
    }
}
