//! `graft serve` against a real server on 127.0.0.1 (port 0): every endpoint, every error
//! code, batching seen through the metrics, answers equal to `graft predict`, shutdown with
//! requests in flight, and abuse (a slow client, 1000 idle connections, malformed HTTP and
//! multipart, memory after 10k requests). Every loop is bounded in count and time.

#[path = "../../../tests/common/data.rs"]
mod data;
#[path = "../../../tests/common/graft.rs"]
mod graft;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A trained head run on a 16-image cut of hymenoptera, made once for every test here.
fn run_dir() -> &'static (PathBuf, PathBuf, Vec<PathBuf>) {
    static RUN: OnceLock<(PathBuf, PathBuf, Vec<PathBuf>)> = OnceLock::new();
    RUN.get_or_init(|| {
        // Under cargo's scratch directory for integration tests, in one place that each run
        // replaces: in the system's temporary directory, one per process, every run left
        // 17 MB behind.
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve");
        if let Err(e) = std::fs::remove_dir_all(&root)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            panic!("clearing {}: {e}", root.display());
        }
        let data_dir = root.join("data");
        data::hymenoptera_cut(&data_dir, 8, 4);
        let run = root.join("run");
        let home = root.join("home");
        let out = graft::train_lite0("head", &data_dir, &run, &home)
            .output()
            .expect("train");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (run, home, data::cut_images(&data_dir, "val"))
    })
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(extra: &[&str]) -> Self {
        let (run, home, _) = run_dir();
        let mut child = graft::graft(home)
            .args(["-q", "serve"])
            .arg(run)
            .args(["--port", "0"])
            .args(extra)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start graft serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let first = lines.next().expect("a start-up line").expect("utf-8");
        let port = first
            .rsplit_once("127.0.0.1:")
            .and_then(|(_, rest)| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {first:?}"));
        // Keep draining stderr so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Self { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid()])
            .status()
            .expect("kill");
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's resident memory, as its `/metrics` reports it.
    fn rss_kib(&self) -> u64 {
        let bytes = metric(self, "process_resident_memory_bytes ");
        assert!(bytes > 0.0, "/metrics has no process_resident_memory_bytes");
        (bytes / 1024.0) as u64
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status and body of a request (any status, no redirects).
fn call(req: ureq::Request, body: Option<&[u8]>) -> (u16, String, Option<String>) {
    let r = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let retry = resp.header("Retry-After").map(str::to_string);
    (resp.status(), resp.into_string().expect("text"), retry)
}

fn post_image(s: &Server, path: &Path, query: &str) -> (u16, String) {
    let bytes = std::fs::read(path).expect("image");
    let (status, body, _) = call(
        ureq::post(&s.url(&format!("/v1/predict{query}"))).set("Content-Type", "image/jpeg"),
        Some(&bytes),
    );
    (status, body)
}

/// `n` clients posting `image` to `url` at once; each one's (status, body, Retry-After).
fn clients(
    url: &str,
    image: &[u8],
    n: usize,
) -> Vec<std::thread::JoinHandle<(u16, String, Option<String>)>> {
    (0..n)
        .map(|_| {
            let (url, image) = (url.to_string(), image.to_vec());
            std::thread::spawn(move || {
                call(
                    ureq::post(&url).set("Content-Type", "image/jpeg"),
                    Some(&image),
                )
            })
        })
        .collect()
}

fn multipart(files: &[(&str, &[u8])], boundary: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, bytes) in files {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\nContent-Type: image/jpeg\r\n\r\n"
        )
        .expect("write");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").expect("write");
    body
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn metric(s: &Server, line_start: &str) -> f64 {
    let (_, text, _) = call(ureq::get(&s.url("/metrics")), None);
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn every_endpoint_answers_and_predictions_equal_graft_predict() {
    let (run, home, images) = run_dir();
    let s = Server::start(&[]);
    // Health and metadata.
    assert_eq!(call(ureq::get(&s.url("/v2/health/live")), None).0, 200);
    assert_eq!(call(ureq::get(&s.url("/v2/health/ready")), None).0, 200);
    let (status, meta, _) = call(ureq::get(&s.url("/v2/models/efficientnet-lite0")), None);
    assert_eq!(status, 200);
    let meta = json(&meta);
    assert_eq!(
        meta["parameters"]["classes"],
        serde_json::json!(["ants", "bees"])
    );
    assert_eq!(meta["outputs"][0]["shape"], serde_json::json!([-1, 2]));
    // The input once (clients key inputs by name), as the tensor; images as BYTES said aside.
    assert_eq!(
        meta["inputs"],
        serde_json::json!([{"name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224]}])
    );
    assert_eq!(
        meta["parameters"]["encoded_images"],
        serde_json::json!({"input": "input", "datatype": "BYTES", "shape": [-1]})
    );
    // What a client sending FP32 tensors must do to an image: the run's own preprocessing.
    let card: serde_json::Value =
        json(&std::fs::read_to_string(run.join("model.json")).expect("model.json"));
    // (Compared as f32: the metadata writes each through f64, model.json as f32.)
    let as_f32 = |v: &serde_json::Value| -> Vec<f32> {
        let items = v.as_array().map(|a| a.iter().map(|x| x.as_f64()));
        items.map_or_else(Vec::new, |x| {
            x.map(|x| x.unwrap_or(f64::NAN) as f32).collect()
        })
    };
    let (served, want) = (&meta["parameters"]["preprocessing"], &card["preprocessing"]);
    for key in ["resize", "crop"] {
        assert_eq!(served[key], want[key], "{key}");
    }
    for key in ["mean", "std"] {
        assert_eq!(as_f32(&served[key]), as_f32(&want[key]), "{key}");
        assert_eq!(as_f32(&served[key]).len(), 3, "{key}");
    }
    // The rest of the Open Inference Protocol's routes: server metadata, model readiness, and
    // each model route at the model's one version.
    let (status, server, _) = call(ureq::get(&s.url("/v2")), None);
    assert_eq!(status, 200);
    let server = json(&server);
    assert_eq!(server["name"], "graft");
    assert!(server["version"].is_string());
    assert_eq!(
        server["extensions"],
        serde_json::json!(["binary_tensor_data", "classification"])
    );
    for path in [
        "/v2/models/efficientnet-lite0/ready",
        "/v2/models/efficientnet-lite0/versions/1/ready",
    ] {
        let (status, ready, _) = call(ureq::get(&s.url(path)), None);
        assert_eq!((status, json(&ready)["ready"].clone()), (200, true.into()));
    }
    let (status, versioned, _) = call(
        ureq::get(&s.url("/v2/models/efficientnet-lite0/versions/1")),
        None,
    );
    assert_eq!((status, json(&versioned)), (200, meta.clone()));
    for (path, reason) in [
        ("/v2/models/resnet50/ready", "no model \"resnet50\""),
        (
            "/v2/models/efficientnet-lite0/versions/2",
            "no version \"2\"",
        ),
        (
            "/v2/models/efficientnet-lite0/versions/2/ready",
            "no version",
        ),
    ] {
        let (status, body, _) = call(ureq::get(&s.url(path)), None);
        assert_eq!(status, 404, "{path}: {body}");
        let error = json(&body)["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains(reason), "{path}: {body}");
    }
    // The same answers as `graft predict --run`.
    let mut args = vec![
        "-q".to_string(),
        "predict".into(),
        "--json".into(),
        "-k".into(),
        "2".into(),
        "--run".into(),
        run.display().to_string(),
    ];
    args.extend(images.iter().map(|p| p.display().to_string()));
    let out = graft::graft(home).args(&args).output().expect("predict");
    let predicted = json(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default(),
    );
    for (i, path) in images.iter().enumerate() {
        let (status, body) = post_image(&s, path, "?top_k=2");
        assert_eq!(status, 200, "{body}");
        let served = json(&body);
        let want = &predicted["predictions"][i]["top"];
        for k in 0..2 {
            assert_eq!(served[k]["label"], want[k]["name"]);
            let (a, b) = (
                served[k]["score"].as_f64().unwrap_or(-1.0),
                want[k]["probability"].as_f64().unwrap_or(1.0),
            );
            assert!((a - b).abs() < 1e-5, "{path:?}: served {a}, predict {b}");
        }
    }
    // top_k, multipart with two images, V2 with BYTES and FP32.
    let (_, one) = post_image(&s, &images[0], "?top_k=1");
    assert_eq!(json(&one).as_array().map(Vec::len), Some(1));
    let a = std::fs::read(&images[0]).expect("a");
    let b = std::fs::read(&images[7]).expect("b");
    let body = multipart(&[("a.jpg", &a), ("b.jpg", &b)], "graftboundary");
    let (status, two, _) = call(
        ureq::post(&s.url("/v1/predict")).set(
            "Content-Type",
            "multipart/form-data; boundary=graftboundary",
        ),
        Some(&body),
    );
    assert_eq!(status, 200, "{two}");
    let two = json(&two);
    assert_eq!(two.as_array().map(Vec::len), Some(2));
    assert_eq!(
        two[0][0]["label"],
        predicted["predictions"][0]["top"][0]["name"]
    );
    assert_eq!(
        two[1][0]["label"],
        predicted["predictions"][7]["top"][0]["name"]
    );
    let b64 = base64_encode(&a);
    let v2 = format!(
        r#"{{"inputs":[{{"name":"input","shape":[1],"datatype":"BYTES","data":["{b64}"]}}]}}"#
    );
    let (status, out, _) = call(
        ureq::post(&s.url("/v2/models/efficientnet-lite0/infer"))
            .set("Content-Type", "application/json"),
        Some(v2.as_bytes()),
    );
    assert_eq!(status, 200, "{out}");
    let out = json(&out);
    assert_eq!(out["outputs"][0]["shape"], serde_json::json!([1, 2]));
    assert!(out.get("id").is_none(), "no id asked, none answered: {out}");
    // At the model's version, and with an `id`, which comes back.
    let with_id = v2.replacen('{', r#"{"id":"req-7","#, 1);
    let (status, at_version, _) = call(
        ureq::post(&s.url("/v2/models/efficientnet-lite0/versions/1/infer")),
        Some(with_id.as_bytes()),
    );
    assert_eq!(status, 200, "{at_version}");
    let at_version = json(&at_version);
    assert_eq!(at_version["outputs"], out["outputs"]);
    assert_eq!(at_version["id"], "req-7");
    let (status, _, _) = call(
        ureq::post(&s.url("/v2/models/efficientnet-lite0/versions/7/infer")),
        Some(v2.as_bytes()),
    );
    assert_eq!(status, 404);
    // The binary tensor data extension (tritonclient's default): the JSON, then the values, the
    // JSON's length in a header. The same image as raw bytes gives the same answer.
    let binary = |datatype: &str, shape: &str, values: &[u8]| {
        let head = format!(
            r#"{{"inputs":[{{"name":"input","shape":{shape},"datatype":"{datatype}","parameters":{{"binary_data_size":{}}}}}]}}"#,
            values.len()
        );
        let mut body = head.clone().into_bytes();
        body.extend_from_slice(values);
        (head.len(), body)
    };
    let post_binary = |(head, body): (usize, Vec<u8>)| {
        call(
            ureq::post(&s.url("/v2/models/efficientnet-lite0/infer"))
                .set("Content-Type", "application/octet-stream")
                .set("Inference-Header-Content-Length", &head.to_string()),
            Some(&body),
        )
    };
    let mut item = (a.len() as u32).to_le_bytes().to_vec();
    item.extend_from_slice(&a);
    let (status, raw, _) = post_binary(binary("BYTES", "[1]", &item));
    assert_eq!(status, 200, "{raw}");
    assert_eq!(json(&raw)["outputs"], out["outputs"]);
    // Binary outputs, as tritonclient asks by default: the JSON names the output's size, its
    // values follow, little-endian, the JSON's length in a header. They are the JSON answer's.
    // The same request, its output named with these parameters.
    let with_output = |parameters: &str| {
        format!(
            r#"{},"outputs":[{{"name":"probabilities","parameters":{parameters}}}]}}"#,
            v2.trim_end_matches('}')
        )
    };
    let asking = with_output(r#"{"binary_data":true}"#);
    let resp = ureq::post(&s.url("/v2/models/efficientnet-lite0/infer"))
        .send_bytes(asking.as_bytes())
        .expect("binary output");
    let head: usize = resp
        .header("Inference-Header-Content-Length")
        .and_then(|v| v.parse().ok())
        .expect("Inference-Header-Content-Length");
    let mut answer = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut answer).expect("body");
    let (head, values) = answer.split_at(head);
    let head: serde_json::Value = serde_json::from_slice(head).expect("json");
    let output = &head["outputs"][0];
    assert_eq!(output["shape"], serde_json::json!([1, 2]));
    assert_eq!(output["parameters"]["binary_data_size"], 8);
    assert!(output.get("data").is_none(), "{head}");
    let floats: Vec<f64> = values
        .chunks_exact(4)
        .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        .collect();
    let in_json: Vec<f64> = out["outputs"][0]["data"]
        .as_array()
        .map(|v| v.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default();
    assert_eq!(floats, in_json);
    // Triton's classification extension: the top class as "score:index:label", the class
    // /v1/predict ranks first.
    let top1 = with_output(r#"{"classification":1}"#);
    let (status, top, _) = call(
        ureq::post(&s.url("/v2/models/efficientnet-lite0/infer")),
        Some(top1.as_bytes()),
    );
    assert_eq!(status, 200, "{top}");
    let top = json(&top);
    assert_eq!(top["outputs"][0]["datatype"], "BYTES");
    let first = top["outputs"][0]["data"][0].as_str().unwrap_or_default();
    let label = predicted["predictions"][0]["top"][0]["name"]
        .as_str()
        .unwrap_or_default();
    assert!(
        first.ends_with(&format!(":{label}")),
        "{first} against {label}"
    );
    // A request that names an input the model does not have is a 400 that names the one it has.
    let (status, reason, _) = call(
        ureq::post(&s.url("/v2/models/efficientnet-lite0/infer")),
        Some(
            v2.replacen(r#""name":"input""#, r#""name":"images""#, 1)
                .as_bytes(),
        ),
    );
    assert_eq!(status, 400, "{reason}");
    assert!(reason.contains(r#"this model has \"input\""#), "{reason}");
    let zero_floats = vec![0u8; 4 * 3 * 224 * 224];
    let (status, from_binary, _) = post_binary(binary("FP32", "[1,3,224,224]", &zero_floats));
    assert_eq!(status, 200, "{from_binary}");
    // A size that disagrees with the bytes sent is a 400 that says so.
    let (head, mut body) = binary("BYTES", "[1]", &item);
    body.truncate(body.len() - 1);
    let (status, reason, _) = post_binary((head, body));
    assert_eq!(status, 400, "{reason}");
    assert!(reason.contains("binary_data_size"), "{reason}");
    let p0 = out["outputs"][0]["data"][0].as_f64().unwrap_or(-1.0);
    let want = &predicted["predictions"][0]["top"];
    let ants = if want[0]["name"] == "ants" {
        &want[0]
    } else {
        &want[1]
    };
    assert!((p0 - ants["probability"].as_f64().unwrap_or(1.0)).abs() < 1e-5);
    let zeros = vec!["0.0"; 3 * 224 * 224].join(",");
    let fp32 = format!(
        r#"{{"inputs":[{{"name":"input","shape":[1,3,224,224],"datatype":"FP32","data":[{zeros}]}}]}}"#
    );
    let (status, from_json, _) = call(
        ureq::post(&s.url("/v2/models/efficientnet-lite0/infer")),
        Some(fp32.as_bytes()),
    );
    assert_eq!(status, 200, "{from_json}");
    assert_eq!(json(&from_json)["outputs"], json(&from_binary)["outputs"]);
    // The page and the metrics.
    let (status, page, _) = call(ureq::get(&s.url("/")), None);
    assert_eq!(status, 200);
    assert!(
        page.contains("<input type=\"file\"")
            && !page.contains("http://")
            && !page.contains("https://"),
        "self-contained"
    );
    let (_, metrics, _) = call(ureq::get(&s.url("/metrics")), None);
    for name in [
        "graft_requests_total",
        "graft_queue_seconds_bucket",
        "graft_decode_seconds_bucket",
        "graft_inference_seconds_bucket",
        "graft_request_seconds_bucket",
        "graft_batch_size_bucket",
        "graft_queue_depth",
        "process_resident_memory_bytes",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    assert!(metrics.contains("graft_requests_total{route=\"/v1/predict\",status=\"200\"}"));
}

fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            s.push(if i <= c.len() {
                T[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    s
}

#[test]
fn every_error_has_its_status_and_reason() {
    let (_, _, images) = run_dir();
    let s = Server::start(&["--max-body", "2MB", "--api-key", "sesame"]);
    let image = std::fs::read(&images[0]).expect("image");
    let authed = |r: ureq::Request| r.set("Authorization", "Bearer sesame");
    let post_jpeg = |body: &[u8]| {
        call(
            authed(ureq::post(&s.url("/v1/predict"))).set("Content-Type", "image/jpeg"),
            Some(body),
        )
    };
    // 401 without the key, or with a wrong one (refused before the body is read, so the body
    // here is small enough to be sent whole); health stays open.
    let (status, body, _) = call(
        ureq::post(&s.url("/v1/predict")).set("Content-Type", "image/jpeg"),
        Some(b"x"),
    );
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        call(
            ureq::post(&s.url("/v1/predict")).set("Authorization", "Bearer nope"),
            Some(b"x")
        )
        .0,
        401
    );
    assert_eq!(call(ureq::get(&s.url("/v2/health/live")), None).0, 200);
    // So do the server's metadata and the model's readiness (probes); the model's metadata and
    // inference need the key at every version.
    for open in [
        "/v2",
        "/v2/models/efficientnet-lite0/ready",
        "/v2/models/efficientnet-lite0/versions/1/ready",
    ] {
        assert_eq!(call(ureq::get(&s.url(open)), None).0, 200, "{open}");
    }
    assert_eq!(
        call(
            ureq::get(&s.url("/v2/models/efficientnet-lite0/versions/1")),
            None
        )
        .0,
        401
    );
    assert_eq!(
        call(
            ureq::post(&s.url("/v2/models/efficientnet-lite0/versions/1/infer")),
            Some(b"{}")
        )
        .0,
        401
    );
    assert_eq!(post_jpeg(&image).0, 200);
    // 413 over the body limit.
    // (Refused on its Content-Length, before the body is read: sent by hand, since a client
    // still writing 3 MB would see the connection close under it.)
    let mut big = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    big.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(big, "POST /v1/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sesame\r\nContent-Type: image/jpeg\r\nContent-Length: 3000000\r\n\r\n").expect("headers");
    big.write_all(&[0u8; 4096]).expect("some body");
    let mut reply = [0u8; 64];
    let n = big.read(&mut reply).expect("an answer");
    let reply = String::from_utf8_lossy(&reply[..n]);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    // 415 for a JSON body on the image endpoint, 422 for bytes that are no image.
    let (status, body, _) = call(
        authed(ureq::post(&s.url("/v1/predict"))).set("Content-Type", "application/json"),
        Some(b"{}"),
    );
    assert_eq!(status, 415, "{body}");
    let (status, body, _) = call(
        authed(ureq::post(&s.url("/v1/predict"))).set("Content-Type", "image/png"),
        Some(b"not a png"),
    );
    assert_eq!(status, 422);
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap_or("")
            .contains("not an image"),
        "{body}"
    );
    let mut truncated = image.clone();
    truncated.truncate(image.len() / 2);
    let (status, body, _) = post_jpeg(&truncated);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("truncated"), "{body}");
    // A sound header over cut data fails only when the backend decodes its batch: still a 422
    // that names the file, whatever came with it, and the model serves the next request.
    let both = multipart(&[("good.jpg", &image), ("cut.jpg", &truncated)], "b0undary");
    let (status, body, _) = call(
        authed(ureq::post(&s.url("/v1/predict")))
            .set("Content-Type", "multipart/form-data; boundary=b0undary"),
        Some(&both),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("cut.jpg"), "{body}");
    assert_eq!(post_jpeg(&image).0, 200);
    // 400 for malformed V2 requests, each with what is wrong.
    let mut cases = [
        ("{", "malformed"),
        (r#"{"inputs": []}"#, "one input"),
        (
            r#"{"inputs":[{"name":"input","shape":[2],"datatype":"BYTES","data":["AAAA"]}]}"#,
            "does not match",
        ),
        (
            r#"{"inputs":[{"name":"input","shape":[1,3,8,8],"datatype":"FP32","data":[0]}]}"#,
            "224x224",
        ),
        (
            r#"{"inputs":[{"name":"input","shape":[1],"datatype":"INT8","data":[1]}]}"#,
            "datatype",
        ),
        // 2^54 images of 3x224x224 values: 2^64 x 147, which wraps to 0 unchecked.
        (
            r#"{"inputs":[{"name":"input","shape":[18014398509481984,3,224,224],"datatype":"FP32","data":[]}]}"#,
            "more values than",
        ),
    ]
    .map(|(bad, says)| (bad.to_string(), says))
    .to_vec();
    // One image's values, the last of them odd (1e39 is a JSON number, but no f32).
    let one_image = |odd: &str| {
        let data = vec!["0"; 3 * 224 * 224 - 1].join(",");
        format!(
            r#"{{"inputs":[{{"name":"input","shape":[1,3,224,224],"datatype":"FP32","data":[{data},{odd}]}}]}}"#
        )
    };
    cases.push((one_image("1e39"), "beyond f32's range"));
    cases.push((one_image(r#""x""#), "not a number"));
    for (bad, says) in cases {
        let (status, body, _) = call(
            authed(ureq::post(&s.url("/v2/models/efficientnet-lite0/infer"))),
            Some(bad.as_bytes()),
        );
        let shown = &bad[..bad.len().min(120)];
        assert_eq!(status, 400, "{shown}: {body}");
        assert!(body.contains(says), "{shown}: {body}");
    }
    assert_eq!(
        call(authed(ureq::get(&s.url("/v2/models/other"))), None).0,
        404
    );
    // A path no route has, and a route asked with the wrong method: JSON saying what there is.
    for (req, status, says) in [
        (
            ureq::get(&s.url("/v2/models/")),
            404,
            "no route GET /v2/models/",
        ),
        (ureq::get(&s.url("/predict")), 404, "no route GET /predict"),
        (
            ureq::get(&s.url("/v1/predict")),
            405,
            "/v1/predict does not take GET",
        ),
    ] {
        let (got, body, _) = call(authed(req), None);
        assert_eq!(got, status, "{body}");
        let error = json(&body)["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains(says), "{body}");
        assert!(error.contains("POST /v1/predict"), "{body}");
    }
    // Truncated multipart: a clear 400.
    let body = multipart(&[("a.jpg", &image[..50_000.min(image.len())])], "b0undary");
    let cut = &body[..body.len() / 2];
    let (status, text, _) = call(
        authed(ureq::post(&s.url("/v1/predict")))
            .set("Content-Type", "multipart/form-data; boundary=b0undary"),
        Some(cut),
    );
    assert_eq!(status, 400, "{text}");
}

#[test]
fn concurrent_requests_are_batched_and_a_full_queue_answers_429() {
    let (_, _, images) = run_dir();
    let image = std::fs::read(&images[0]).expect("image");
    let s = Server::start(&["--max-delay-ms", "200", "--max-batch", "8"]);
    let url = s.url("/v1/predict");
    let before = metric(&s, "graft_batch_size_count");
    let threads = clients(&url, &image, 8);
    for t in threads {
        assert_eq!(t.join().expect("thread").0, 200);
    }
    let batches = metric(&s, "graft_batch_size_count") - before;
    assert!(
        batches < 8.0,
        "8 concurrent images went through {batches} forward passes"
    );
    drop(s);

    // One slot in the queue, one image a batch: a burst gets some 429s, with Retry-After.
    let s = Server::start(&[
        "--max-queue",
        "1",
        "--max-batch",
        "1",
        "--max-delay-ms",
        "0",
    ]);
    let url = s.url("/v1/predict");
    let results: Vec<_> = clients(&url, &image, 24)
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let refused: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert!(
        !refused.is_empty(),
        "no 429 in a burst of 24 against a queue of 1"
    );
    assert!(
        refused.iter().all(|r| r.2.as_deref() == Some("1")),
        "Retry-After on every 429"
    );
    assert!(
        results.iter().all(|r| r.0 == 200 || r.0 == 429),
        "only 200 and 429"
    );
}

/// `--name` names the model in the V2 paths and metadata, in place of the architecture's name.
#[test]
fn a_model_is_served_under_the_name_given() {
    let (_, _, images) = run_dir();
    let s = Server::start(&["--name", "ants-vs-bees"]);
    let (status, body, _) = call(ureq::get(&s.url("/v2/models/ants-vs-bees")), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["name"], "ants-vs-bees", "{body}");
    let (status, body, _) = call(ureq::get(&s.url("/v2/models/efficientnet-lite0")), None);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("ants-vs-bees"), "{body}");
    let bytes = std::fs::read(&images[0]).expect("image");
    let request = serde_json::json!({"inputs": [{
        "name": "input", "datatype": "BYTES", "shape": [1],
        "data": [base64_encode(&bytes)],
    }]});
    let (status, body, _) = call(
        ureq::post(&s.url("/v2/models/ants-vs-bees/infer")).set("Content-Type", "application/json"),
        Some(request.to_string().as_bytes()),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["model_name"], "ants-vs-bees", "{body}");
}

#[test]
fn a_lone_request_goes_straight_to_an_idle_model_unless_told_to_wait() {
    let (_, _, images) = run_dir();
    // Adaptive (the default): nothing else is arriving and the model is idle, so the image
    // does not wait out the 4 s delay (the queue histogram says how long it waited).
    let s = Server::start(&["--max-delay-ms", "4000"]);
    assert_eq!(post_image(&s, &images[0], "").0, 200);
    let waited = metric(&s, "graft_queue_seconds_sum");
    assert!(waited < 2.0, "a lone image waited {waited} s for company");
    drop(s);
    // Always (Triton's policy): every batch waits out the delay.
    let s = Server::start(&["--max-delay-ms", "1500", "--batch-wait", "always"]);
    assert_eq!(post_image(&s, &images[0], "").0, 200);
    let waited = metric(&s, "graft_queue_seconds_sum");
    assert!(waited >= 1.4, "the image waited only {waited} s");
}

#[test]
fn sigterm_finishes_requests_in_flight_then_exits_zero() {
    let (_, _, images) = run_dir();
    let image = std::fs::read(&images[0]).expect("image");
    let mut s = Server::start(&["--max-delay-ms", "1000", "--batch-wait", "always"]);
    let url = s.url("/v1/predict");
    let threads = clients(&url, &image, 4);
    // The requests are in (waiting out the batching delay) when the signal comes.
    std::thread::sleep(Duration::from_millis(400));
    let status = s.terminate();
    for t in threads {
        assert_eq!(
            t.join().expect("thread").0,
            200,
            "a request in flight was answered"
        );
    }
    assert_eq!(status.code(), Some(0));
    assert!(
        TcpStream::connect(("127.0.0.1", s.port)).is_err(),
        "no longer accepting"
    );
}

#[test]
fn abuse_slow_clients_idle_connections_malformed_http_and_memory() {
    let (_, _, images) = run_dir();
    let image = std::fs::read(&images[0]).expect("image");
    let s = Server::start(&["--read-timeout-s", "2"]);
    // A client sending a byte a second is cut off by the read timeout.
    let started = Instant::now();
    let mut slow = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(slow, "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n").expect("headers");
    let mut answer = String::new();
    for _ in 0..6 {
        if slow.write_all(b"x").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
        let mut buf = [0u8; 512];
        slow.set_nonblocking(true).expect("nonblocking");
        if let Ok(n) = slow.read(&mut buf) {
            answer.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        slow.set_nonblocking(false).expect("blocking");
        if !answer.is_empty() {
            break;
        }
    }
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "slow client got {answer:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    // 1000 idle connections do not stop others being served.
    let idle: Vec<TcpStream> = (0..1000)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", s.port)).ok())
        .collect();
    assert!(idle.len() >= 900, "{} idle connections opened", idle.len());
    let (status, _) = post_image(&s, &images[1], "");
    assert_eq!(status, 200, "served beside 1000 idle connections");
    drop(idle);
    // Malformed HTTP gets a 400, not a hang or a crash.
    let mut bad = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    bad.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    bad.write_all(b"THIS IS NOT HTTP\r\n\r\n").expect("write");
    let mut reply = String::new();
    let _ = bad.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply:?}");
    // Memory stays bounded. A leak grows RSS in every round by the same amount; the allocator
    // reaching its working set (batches of one to four images in a heap that keeps what they
    // free) grows it in jumps that stop. So after a warm-up round of the same mix, the quietest
    // of three rounds of 4k requests must grow by less than 1 KiB a request, and all of them
    // together stay within a margin.
    let url = s.url("/v1/predict");
    load(&url, &image, 500);
    let mut rss = vec![s.rss_kib()];
    for _ in 0..3 {
        load(&url, &image, 1000);
        rss.push(s.rss_kib());
    }
    let quietest = rss.windows(2).map(|w| w[1].saturating_sub(w[0])).min();
    assert!(
        quietest < Some(4 * 1024) && rss[3] < rss[0] + 64 * 1024,
        "RSS after warm-up and each round of 4k requests: {rss:?} KiB"
    );
    // A server gone quiet gives back the free pages its last batches left: between batches the
    // backend waits only until a release is due (10 s after the last one). After a quiet spell
    // (any release then due is made), a burst of images faults freed pages in again, and RSS
    // must fall in the quiet that follows. A release can fall due in the burst's very last
    // batch, leaving nothing for the quiet to give back (a chance of about 0.2%): a second
    // burst settles it.
    std::thread::sleep(Duration::from_secs(11));
    let mut seen = Vec::new();
    for _ in 0..2 {
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..6 {
                        assert_eq!(post_image(&s, &images[0], "").0, 200);
                    }
                });
            }
        });
        let busy = s.rss_kib();
        std::thread::sleep(Duration::from_secs(12));
        let idle = s.rss_kib();
        seen.push((busy, idle));
        if idle < busy {
            break;
        }
    }
    assert!(
        seen.iter().any(|&(busy, idle)| idle < busy),
        "RSS after a burst and after 12 s of quiet: {seen:?} KiB"
    );
}

/// Four clients, `per_client` requests each: every 25th an image through the model, the rest
/// refused early (junk bytes, 422) or health checks.
fn load(url: &str, image: &[u8], per_client: usize) {
    let deadline = Instant::now() + Duration::from_secs(240);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (url, image) = (url.to_string(), image.to_vec());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().build();
                for i in 0..per_client {
                    if Instant::now() > deadline {
                        break;
                    }
                    let (status, _, _) = if i % 25 == 0 {
                        call(
                            agent.post(&url).set("Content-Type", "image/jpeg"),
                            Some(&image),
                        )
                    } else if (i + t) % 2 == 0 {
                        call(
                            agent.post(&url).set("Content-Type", "image/png"),
                            Some(b"junk"),
                        )
                    } else {
                        call(
                            agent.get(&url.replace("/v1/predict", "/v2/health/ready")),
                            None,
                        )
                    };
                    assert!(status == 200 || status == 422, "{status}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
}

/// A WebDriver session with headless Chromium through chromedriver, spoken as plain HTTP.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    profile: PathBuf,
}

impl Browser {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (.ci/run installs Debian's chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let profile =
            std::env::temp_dir().join(format!("graft-chromium-{}-{port}", std::process::id()));
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--no-first-run", "--disable-dev-shm-usage", "--window-size=820,760", format!("--user-data-dir={}", profile.display())]}}}});
        let deadline = Instant::now() + Duration::from_secs(20);
        let session = loop {
            match ureq::post(&format!("{base}/session")).send_string(&caps.to_string()) {
                Ok(r) => {
                    let v = json(&r.into_string().expect("text"));
                    break v["value"]["sessionId"]
                        .as_str()
                        .expect("a session")
                        .to_string();
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("chromedriver: {e}"),
            }
        };
        Self {
            driver,
            base,
            session,
            profile,
        }
    }

    fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        match ureq::post(&url).send_string(&body.to_string()) {
            Ok(r) => json(&r.into_string().expect("text")),
            Err(ureq::Error::Status(_, r)) => json(&r.into_string().expect("text")),
            Err(e) => panic!("{path}: {e}"),
        }
    }

    fn get(&self, path: &str) -> serde_json::Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        json(
            &ureq::get(&url)
                .call()
                .expect("webdriver")
                .into_string()
                .expect("text"),
        )
    }

    /// The element matching `css`, if there is one now.
    fn find(&self, css: &str) -> Option<String> {
        let v = self.post(
            "/element",
            serde_json::json!({"using": "css selector", "value": css}),
        );
        v["value"]["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .map(str::to_string)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // Best effort: a profile left behind costs only disk in the temp folder.
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[test]
fn the_page_in_a_real_browser_uploads_an_image_and_shows_its_class() {
    let (_, _, images) = run_dir();
    let s = Server::start(&[]);
    let b = Browser::start();
    b.post("/url", serde_json::json!({"url": s.url("/")}));
    let input = b.find("#file").expect("the page has a file input");
    // Sending a path to a file input uploads that file, as choosing it would.
    let ant = &images[0];
    b.post(
        &format!("/element/{input}/value"),
        serde_json::json!({"text": ant.display().to_string()}),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let label = loop {
        if let Some(first) = b.find(".bar .label") {
            break b.get(&format!("/element/{first}/text"))["value"]
                .as_str()
                .unwrap_or("")
                .to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no prediction appeared on the page"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (_, direct) = post_image(&s, ant, "?top_k=1");
    assert_eq!(
        label,
        json(&direct)[0]["label"].as_str().unwrap_or("?"),
        "the page shows the served top class"
    );
    let about = b
        .find("#about")
        .map(|e| b.get(&format!("/element/{e}/text"))["value"].to_string())
        .unwrap_or_default();
    assert!(
        about.contains("ants") && about.contains("bees"),
        "the page names the classes: {about}"
    );
    // A screenshot for people (README's picture), when asked for.
    if let Ok(path) = std::env::var("GRAFT_SCREENSHOT") {
        let png = b.get("/screenshot")["value"]
            .as_str()
            .unwrap_or("")
            .to_string();
        std::fs::write(&path, base64_decode(&png)).expect("screenshot");
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | (u32::from(value(c)) << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[test]
fn a_request_whose_client_went_away_is_dropped_before_inference() {
    let (_, _, images) = run_dir();
    let image = std::fs::read(&images[0]).expect("image");
    let s = Server::start(&[
        "--max-delay-ms",
        "1500",
        "--max-batch",
        "64",
        "--batch-wait",
        "always",
    ]);
    let mut gone = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    write!(gone, "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", image.len()).expect("headers");
    gone.write_all(&image).expect("body");
    // The image waits for the batch to fill (up to 1.5 s); its client leaves meanwhile.
    std::thread::sleep(Duration::from_millis(300));
    drop(gone);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        metric(&s, "graft_batch_size_count"),
        0.0,
        "no forward pass for a client that left"
    );
    let (status, _) = post_image(&s, &images[1], "");
    assert_eq!(status, 200);
    assert_eq!(metric(&s, "graft_batch_size_count"), 1.0);
}
