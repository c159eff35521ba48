//! Fetching into the cache against a local HTTP server: verified files land atomically, a
//! sha256 mismatch leaves nothing behind, and offline misses say how to get the file.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use graft_weights::{Digest, FetchOptions, Origin, WeightSource, WeightsError, fetch, resolve};

/// Serves `body` to `requests` GET requests on 127.0.0.1, then stops.
fn serve(body: Vec<u8>, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}/models/w.pth")
}

fn source(url: String, digest: Digest) -> WeightSource {
    WeightSource {
        file_name: "w-abcd1234.pth".into(),
        origin: Origin::Url(url),
        digest,
    }
}

fn sha256(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("f");
    std::fs::write(&p, bytes).expect("write");
    graft_weights::sha256_file(&p).expect("hash")
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn download_with_matching_sha256_is_cached_and_reused() {
    let body = b"pretend weights".repeat(1000);
    let home = tempfile::tempdir().expect("tmp");
    let src = source(serve(body.clone(), 1), Digest::Sha256(sha256(&body)));
    let mut calls = 0;
    let path = fetch("toy", &src, home.path(), &mut |_, _| calls += 1).expect("fetch");
    assert_eq!(std::fs::read(&path).expect("read"), body);
    assert!(calls > 0, "progress was reported");
    // The server is gone now: a second resolve must come from the cache.
    let options = FetchOptions {
        home: home.path().into(),
        offline: true,
    };
    assert_eq!(
        resolve("toy", &src, None, &options, &mut |_, _| {}).expect("cached"),
        path
    );
}

#[test]
fn sha256_mismatch_is_refused_and_nothing_is_cached() {
    let home = tempfile::tempdir().expect("tmp");
    let src = source(
        serve(b"tampered".to_vec(), 1),
        Digest::Sha256("00".repeat(32)),
    );
    let err = fetch("toy", &src, home.path(), &mut |_, _| {}).expect_err("must refuse");
    assert!(matches!(err, WeightsError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("not used or cached"), "{err}");
    assert_eq!(files_in(&home.path().join("weights")), Vec::<String>::new());
}

#[test]
fn torch_hub_prefix_digest_is_checked() {
    let home = tempfile::tempdir().expect("tmp");
    let body = b"abc".to_vec();
    let prefix = sha256(&body)[..8].to_string();
    let src = source(serve(body, 1), Digest::Sha256Prefix(prefix));
    assert!(fetch("toy", &src, home.path(), &mut |_, _| {}).is_ok());
}

#[test]
fn missing_weights_offline_say_how_to_get_them() {
    let home = tempfile::tempdir().expect("tmp");
    let src = source(
        "https://download.pytorch.org/models/w-abcd1234.pth".into(),
        Digest::Sha256Prefix("abcd1234".into()),
    );
    let options = FetchOptions {
        home: home.path().into(),
        offline: true,
    };
    let err = resolve("toy", &src, None, &options, &mut |_, _| {}).expect_err("offline miss");
    let text = err.to_string();
    assert!(text.contains("graft weights fetch toy"), "{text}");
    assert!(text.contains("--weights FILE"), "{text}");
    assert!(
        text.contains("https://download.pytorch.org/models/w-abcd1234.pth"),
        "{text}"
    );
}

#[test]
fn unreachable_server_names_the_url_and_the_way_out() {
    let home = tempfile::tempdir().expect("tmp");
    // Bind then drop: nothing listens on this port any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("http://127.0.0.1:{port}/w.pth");
    let src = source(url.clone(), Digest::Sha256Prefix("abcd1234".into()));
    let options = FetchOptions {
        home: home.path().into(),
        offline: false,
    };
    let text = resolve("toy", &src, None, &options, &mut |_, _| {})
        .expect_err("no server")
        .to_string();
    assert!(
        text.contains(&url) && text.contains("graft weights fetch toy"),
        "{text}"
    );
    // Named once on the error's first line (ureq's own message begins with it too).
    let first = text.lines().next().unwrap_or_default();
    assert_eq!(first.matches(url.as_str()).count(), 1, "{first}");
    assert_eq!(files_in(&home.path().join("weights")), Vec::<String>::new());
}

#[test]
fn explicit_weights_file_that_does_not_exist_is_named() {
    let src = source(
        "http://127.0.0.1:9/w.pth".into(),
        Digest::Sha256Prefix("abcd1234".into()),
    );
    let options = FetchOptions {
        home: std::env::temp_dir(),
        offline: true,
    };
    let text = resolve(
        "toy",
        &src,
        Some(Path::new("/nope/w.pth")),
        &options,
        &mut |_, _| {},
    )
    .expect_err("missing")
    .to_string();
    assert!(
        text.contains("/nope/w.pth") && text.contains("does not exist"),
        "{text}"
    );
}
