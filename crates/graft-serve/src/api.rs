//! The router's side: requests validated and turned into jobs, answers and errors as JSON.
//! An image's header is checked here (junk and decompression bombs are refused before they
//! queue); its pixels are decoded by the backend, as the first step of its batch.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Json;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use graft_data::{DecodeLimits, Preprocess, check_image_header};
use graft_run::Label;
use graft_run::infer::labels;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::queue::{Arriving, Flow, Input, Job, JobError};

/// What the model is, for the metadata endpoint and the page.
#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub architecture: String,
    pub strategy: String,
    pub classes: Vec<String>,
    pub input_size: usize,
    /// How an image becomes the FP32 input: what a V2 client sending tensors must do itself.
    pub preprocessing: graft_spec::Preprocessing,
    pub val_accuracy: Option<f64>,
}

pub struct Inner {
    pub jobs: mpsc::Sender<Job>,
    pub flow: Arc<Flow>,
    pub info: ModelInfo,
    pub preprocess: Preprocess,
    pub metrics: Arc<Metrics>,
    pub api_key: Option<String>,
    pub max_queue: usize,
    pub max_body: usize,
    pub log_requests: bool,
}

pub type AppState = Arc<Inner>;

/// An error answer: a status and a reason, as `{"error": reason}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

#[derive(Deserialize)]
pub struct TopK {
    pub top_k: Option<usize>,
}

/// An uploaded image file for the queue, once its header says it is an image within the
/// decoder's limits (reading a header takes microseconds, so it runs here, on the async
/// threads).
fn encoded(limits: DecodeLimits, bytes: Vec<u8>, name: String) -> Result<Input, ApiError> {
    check_image_header(&bytes, Path::new(&name), limits)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    Ok(Input::Encoded { bytes, name })
}

/// Queues images and waits for their probabilities; a full queue is a 429, an image that
/// does not decode a 422. `arriving` is the request's mark on the batcher's flow, let go as
/// its images are queued.
async fn classify(
    state: &AppState,
    images: Vec<Input>,
    arriving: Arriving<'_>,
) -> Result<Vec<Vec<f32>>, ApiError> {
    // Before the images are sent, so that a batcher seeing them never waits for this request.
    drop(arriving);
    let mut waiting = Vec::with_capacity(images.len());
    for input in images {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            input,
            enqueued: Instant::now(),
            reply,
        };
        state.jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "the queue is full ({} images waiting); retry shortly",
                    state.max_queue
                ),
            ),
            mpsc::error::TrySendError::Closed(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down",
            ),
        })?;
        state.metrics.queue_depth.store(
            (state.max_queue - state.jobs.capacity()) as u64,
            Ordering::Relaxed,
        );
        waiting.push(answer);
    }
    let mut out = Vec::with_capacity(waiting.len());
    for answer in waiting {
        let row = answer
            .await
            .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the model stopped"))?
            .map_err(|e| match e {
                JobError::Undecodable(reason) => {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason)
                }
                JobError::Model(reason) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, reason),
            })?;
        out.push(row);
    }
    Ok(out)
}

/// The images of a multipart body: every part with content (a file field or not).
async fn parts(mut form: Multipart) -> Result<Vec<(String, Vec<u8>)>, ApiError> {
    let mut out = Vec::new();
    loop {
        let field = form.next_field().await.map_err(|e| {
            ApiError::new(
                e.status(),
                format!("malformed multipart body: {}", e.body_text()),
            )
        })?;
        let Some(field) = field else { break };
        let name = field
            .file_name()
            .or(field.name())
            .unwrap_or("image")
            .to_string();
        let bytes = field.bytes().await.map_err(|e| {
            ApiError::new(
                e.status(),
                format!("malformed multipart body: {}", e.body_text()),
            )
        })?;
        out.push((name, bytes.to_vec()));
    }
    if out.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the multipart body holds no image",
        ));
    }
    Ok(out)
}

/// What `POST /v1/predict` was sent: one image's bytes (answered with one list of labels) or a
/// multipart body (a list per part).
pub struct Upload {
    pub multipart: bool,
    pub images: Vec<Input>,
}

/// The images of a `POST /v1/predict` request, or the error it gets: 400 for a malformed or
/// empty multipart body, 413 past the body limit, 415 for JSON or text, 422 for a part whose
/// header is not an image's. All that the server does with an upload before queueing it
/// (graft-fuzz's `predict_upload` target runs it).
pub async fn upload(request: Request, limits: DecodeLimits) -> Result<Upload, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let multipart = content_type.starts_with("multipart/form-data");
    // The body limit travels in the request's extensions (the router's `DefaultBodyLimit`),
    // so the extractors need no state.
    let files = if multipart {
        let form = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        parts(form).await?
    } else if content_type.starts_with("application/json") || content_type.starts_with("text/") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("send the image's bytes (image/*) or multipart/form-data, not {content_type}"),
        ));
    } else {
        let body = axum::body::Bytes::from_request(request, &())
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        vec![("upload".to_string(), body.to_vec())]
    };
    let images = files
        .into_iter()
        .map(|(name, data)| encoded(limits, data, name))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Upload { multipart, images })
}

/// `POST /v1/predict`: raw image bytes (answer: one list of labels) or a multipart body with
/// one or more images (answer: a list per image).
pub async fn predict(
    State(state): State<AppState>,
    Query(q): Query<TopK>,
    request: Request,
) -> Result<Response, ApiError> {
    let arriving = state.flow.arriving();
    let k = q.top_k.unwrap_or(5).max(1);
    let Upload { multipart, images } = upload(request, state.preprocess.limits).await?;
    let probs = classify(&state, images, arriving).await?;
    let answers: Vec<Vec<Label>> = probs
        .iter()
        .map(|p| labels(&state.info.classes, p, k))
        .collect();
    Ok(if multipart {
        Json(answers).into_response()
    } else {
        Json(answers.into_iter().next().unwrap_or_default()).into_response()
    })
}

/// KServe V2 tensors in and out (`data` flat, row-major).
#[derive(Deserialize)]
pub struct InferRequest {
    pub inputs: Vec<InferInput>,
}

#[derive(Deserialize)]
pub struct InferInput {
    pub name: String,
    pub shape: Vec<usize>,
    pub datatype: String,
    /// The values in the JSON; absent when they follow it as binary data.
    #[serde(default)]
    pub data: Option<serde_json::Value>,
    #[serde(default)]
    pub parameters: InputParameters,
}

/// An input's parameters that graft reads (others, such as a client's own, are ignored).
#[derive(Default, Deserialize)]
pub struct InputParameters {
    /// The binary tensor data extension: the input's values are this many bytes after the
    /// JSON, not in it.
    pub binary_data_size: Option<usize>,
}

/// Where an input's values are.
enum Values<'a> {
    Json(serde_json::Value),
    /// Raw bytes in the binary tensor data extension's layout: FP32 values little-endian,
    /// BYTES items each after its length (4 bytes, little-endian).
    Binary(&'a [u8]),
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// BYTES items laid out as the binary extension does: a 4-byte little-endian length, then that
/// many bytes, one item after another.
fn length_prefixed(mut bytes: &[u8]) -> Result<Vec<&[u8]>, ApiError> {
    let mut items = Vec::new();
    while !bytes.is_empty() {
        let i = items.len();
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or_else(|| bad(format!("BYTES item {i}: its 4-byte length is cut short")))?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            return Err(bad(format!(
                "BYTES item {i} claims {len} bytes, {} are left",
                rest.len()
            )));
        }
        let (item, rest) = rest.split_at(len);
        items.push(item);
        bytes = rest;
    }
    Ok(items)
}

/// The images of a V2 input: BYTES (image files: base64 strings in JSON, raw in binary data)
/// or FP32 `[N, 3, H, W]`.
fn v2_images(
    input_size: usize,
    limits: DecodeLimits,
    input: &InferInput,
    values: Values<'_>,
) -> Result<Vec<Input>, ApiError> {
    match input.datatype.as_str() {
        "BYTES" => {
            let files: Vec<Vec<u8>> = match values {
                Values::Json(data) => {
                    let items = data
                        .as_array()
                        .ok_or_else(|| bad("BYTES data must be a list of base64 strings"))?;
                    let mut files = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        let text = item
                            .as_str()
                            .ok_or_else(|| bad(format!("item {i} is not a string")))?;
                        files.push(
                            base64::engine::general_purpose::STANDARD
                                .decode(text)
                                .map_err(|e| bad(format!("item {i} is not base64: {e}")))?,
                        );
                    }
                    files
                }
                Values::Binary(bytes) => length_prefixed(bytes)?
                    .into_iter()
                    .map(<[u8]>::to_vec)
                    .collect(),
            };
            if input.shape != [files.len()] {
                return Err(bad(format!(
                    "shape {:?} does not match {} items",
                    input.shape,
                    files.len()
                )));
            }
            files
                .into_iter()
                .enumerate()
                .map(|(i, bytes)| encoded(limits, bytes, format!("{}[{i}]", input.name)))
                .collect()
        }
        "FP32" => {
            let s = input_size;
            let [n, 3, h, w] = input.shape[..] else {
                return Err(bad(format!(
                    "FP32 input shape must be [N, 3, {s}, {s}], not {:?}",
                    input.shape
                )));
            };
            if h != s || w != s {
                return Err(bad(format!("FP32 input must be {s}x{s}, not {h}x{w}")));
            }
            // Checked: a shape's product can wrap, and a wrapped one could match the data's
            // length ([2^54, 3, 224, 224] wraps to 0 and passed with no data as no images).
            let needed = n.checked_mul(3 * s * s).ok_or_else(|| {
                bad(format!(
                    "shape {:?} is more values than any request holds",
                    input.shape
                ))
            })?;
            let flat = match values {
                Values::Json(data) => {
                    let values = data
                        .as_array()
                        .ok_or_else(|| bad("FP32 data must be a list of numbers"))?;
                    if values.len() != needed {
                        return Err(bad(format!(
                            "shape {:?} needs {needed} values, found {}",
                            input.shape,
                            values.len()
                        )));
                    }
                    values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| match v.as_f64().map(|x| x as f32) {
                            // 1e39 is a JSON number but infinite as an f32: the scores would
                            // be NaN.
                            Some(x) if x.is_finite() => Ok(x),
                            Some(_) => {
                                Err(bad(format!("FP32 value {i} ({v}) is beyond f32's range")))
                            }
                            None => Err(bad(format!("FP32 value {i} ({v}) is not a number"))),
                        })
                        .collect::<Result<Vec<f32>, ApiError>>()?
                }
                Values::Binary(bytes) => {
                    if needed.checked_mul(4) != Some(bytes.len()) {
                        return Err(bad(format!(
                            "shape {:?} needs {needed} FP32 values, the binary data holds {} bytes",
                            input.shape,
                            bytes.len()
                        )));
                    }
                    let flat: Vec<f32> = bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    if let Some(i) = flat.iter().position(|x| !x.is_finite()) {
                        return Err(bad(format!("FP32 value {i} ({}) is not finite", flat[i])));
                    }
                    flat
                }
            };
            Ok(flat
                .chunks(3 * s * s)
                .map(|image| Input::Pixels(image.to_vec()))
                .collect())
        }
        other => Err(bad(format!(
            "datatype {other:?}: use BYTES (encoded images) or FP32"
        ))),
    }
}

/// The `Inference-Header-Content-Length` header of the binary tensor data extension: how many
/// of the body's bytes are JSON (the rest are inputs' values). `None` when absent.
pub fn json_length(headers: &HeaderMap) -> Result<Option<usize>, ApiError> {
    let Some(v) = headers.get("inference-header-content-length") else {
        return Ok(None);
    };
    let n = v.to_str().ok().and_then(|v| v.trim().parse().ok());
    n.map(Some).ok_or_else(|| {
        bad(format!(
            "Inference-Header-Content-Length {v:?} is not a byte count"
        ))
    })
}

/// The images a V2 infer request's body asks about, or the 400 (422 for an image whose header
/// does not decode) it gets: all that the server does with a body before queueing it, a pure
/// function of its bytes (graft-fuzz's `v2_request` target runs it). `json_length`: the
/// binary tensor data extension's header, when the request has one ([`json_length`]); the
/// bytes after the JSON hold the values of the inputs that give a `binary_data_size`, in order.
pub fn infer_images(
    body: &[u8],
    json_length: Option<usize>,
    input_size: usize,
    limits: DecodeLimits,
) -> Result<Vec<Input>, ApiError> {
    let (json, binary) = match json_length {
        None => (body, &[][..]),
        Some(n) => body.split_at_checked(n).ok_or_else(|| {
            bad(format!(
                "Inference-Header-Content-Length is {n}, past the body's {} bytes",
                body.len()
            ))
        })?,
    };
    let request: InferRequest =
        serde_json::from_slice(json).map_err(|e| bad(format!("malformed V2 request: {e}")))?;
    let mut inputs = request.inputs.into_iter();
    let mut input = inputs
        .next()
        .ok_or_else(|| bad("a V2 request needs one input"))?;
    if inputs.next().is_some() {
        return Err(bad("this model takes one input"));
    }
    let values = match (input.data.take(), input.parameters.binary_data_size) {
        (Some(data), None) => Values::Json(data),
        (None, Some(size)) if json_length.is_none() => {
            return Err(bad(format!(
                "input {:?} has binary_data_size {size} but the request no \
                 Inference-Header-Content-Length header",
                input.name
            )));
        }
        (None, Some(size)) if size == binary.len() => Values::Binary(binary),
        (None, Some(size)) => {
            return Err(bad(format!(
                "input {:?} has binary_data_size {size}, the body {} bytes after its JSON",
                input.name,
                binary.len()
            )));
        }
        (Some(_), Some(_)) => {
            return Err(bad(format!(
                "input {:?} has both data and binary_data_size",
                input.name
            )));
        }
        (None, None) => return Err(bad(format!("input {:?} has no data", input.name))),
    };
    if matches!(values, Values::Json(_)) && !binary.is_empty() {
        return Err(bad(format!(
            "{} bytes follow the JSON, but no input has binary_data_size",
            binary.len()
        )));
    }
    v2_images(input_size, limits, &input, values)
}

/// The path parameters of a V2 model route: `{name}`, and `{version}` on the versioned forms
/// (`/v2/models/{name}/versions/{version}/...`).
pub type ModelPath = axum::extract::Path<HashMap<String, String>>;

/// The one version of the one model a server holds, as V2 paths name it.
const VERSION: &str = "1";

/// Checks that a V2 path names this server's model (and its version, where it names one): 404
/// with what the server has otherwise, as KServe answers for a model it does not hold.
fn this_model(state: &AppState, path: &HashMap<String, String>) -> Result<(), ApiError> {
    let name = path.get("name").map_or("", String::as_str);
    if name != state.info.name {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no model {name:?}; this server has {:?}", state.info.name),
        ));
    }
    match path.get("version") {
        Some(v) if v != VERSION => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no version {v:?} of {name:?}; this server has version {VERSION:?}"),
        )),
        _ => Ok(()),
    }
}

/// `GET /v2`: the server's metadata (the Open Inference Protocol's server metadata request).
pub async fn server_metadata() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "name": "graft",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": [],
    }))
}

/// `GET /v2/models/{name}/ready`: 200 when the model is loaded and taking requests, which it is
/// from the moment the server listens; 404 for a model it does not hold.
pub async fn model_ready(
    State(state): State<AppState>,
    axum::extract::Path(path): ModelPath,
) -> Result<Response, ApiError> {
    this_model(&state, &path)?;
    Ok(Json(serde_json::json!({"name": state.info.name, "ready": true})).into_response())
}

/// `POST /v2/models/{name}/infer`.
pub async fn infer(
    State(state): State<AppState>,
    axum::extract::Path(path): ModelPath,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let arriving = state.flow.arriving();
    this_model(&state, &path)?;
    let json_length = json_length(&headers)?;
    let images = infer_images(
        &body,
        json_length,
        state.info.input_size,
        state.preprocess.limits,
    )?;
    let n = images.len();
    let probs = classify(&state, images, arriving).await?;
    let classes = state.info.classes.len();
    Ok(Json(serde_json::json!({
        "model_name": state.info.name,
        "model_version": VERSION,
        "outputs": [{
            "name": "probabilities",
            "datatype": "FP32",
            "shape": [n, classes],
            "data": probs.concat(),
        }],
    }))
    .into_response())
}

/// `GET /v2/models/{name}`: inputs, outputs and classes.
pub async fn metadata(
    State(state): State<AppState>,
    axum::extract::Path(path): ModelPath,
) -> Result<Response, ApiError> {
    this_model(&state, &path)?;
    let info = &state.info;
    let s = info.input_size;
    Ok(Json(serde_json::json!({
        "name": info.name,
        "versions": [VERSION],
        "platform": "graft",
        "inputs": [
            {"name": "input", "datatype": "BYTES", "shape": [-1]},
            {"name": "input", "datatype": "FP32", "shape": [-1, 3, s, s]},
        ],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, info.classes.len()]}],
        "parameters": {
            "architecture": info.architecture,
            "strategy": info.strategy,
            "classes": info.classes,
            "preprocessing": info.preprocessing,
            "val_accuracy": info.val_accuracy,
        },
    }))
    .into_response())
}
