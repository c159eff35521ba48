//! Peak resident memory (VmHWM) of this process in MiB, as the PyTorch peers report it; shared
//! by the bench examples (`#[path]`-included, so no crate depends on another for it).

pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
