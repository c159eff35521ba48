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
pub(crate) fn encoded(
    limits: DecodeLimits,
    bytes: Vec<u8>,
    name: String,
) -> Result<Input, ApiError> {
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

/// The path parameters of a V2 model route: `{name}`, and `{version}` on the versioned forms
/// (`/v2/models/{name}/versions/{version}/...`).
pub type ModelPath = axum::extract::Path<HashMap<String, String>>;

/// The one version of the one model a server holds, as V2 paths name it.
const MODEL_VERSION: &str = "1";

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
        Some(v) if v != MODEL_VERSION => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no version {v:?} of {name:?}; this server has version {MODEL_VERSION:?}"),
        )),
        _ => Ok(()),
    }
}

/// `GET /v2`: the server's metadata (the Open Inference Protocol's server metadata request).
pub async fn server_metadata() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "name": "graft",
        "version": graft_spec::VERSION,
        // Triton's names for the extensions of the protocol graft speaks.
        "extensions": ["binary_tensor_data", "classification"],
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
    let json_length = crate::v2::json_length(&headers)?;
    let asked = crate::v2::infer_images(
        &body,
        json_length,
        state.info.input_size,
        state.preprocess.limits,
    )?;
    let probs = classify(&state, asked.images, arriving).await?;
    let answer = crate::v2::answer(
        &asked.answer,
        &state.info.name,
        MODEL_VERSION,
        &state.info.classes,
        &probs,
    );
    let Some(values) = answer.binary else {
        return Ok(Json(answer.json).into_response());
    };
    // The JSON, then the values, the JSON's length in a header.
    let mut body = serde_json::to_vec(&answer.json)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let json_length = body.len();
    body.extend(values);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                header::HeaderName::from_static("inference-header-content-length"),
                HeaderValue::from(json_length),
            ),
        ],
        body,
    )
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
        "versions": [MODEL_VERSION],
        "platform": "graft",
        // One entry a name, as clients key inputs by name: the tensor the model runs on, which
        // tools that make up requests from metadata (Triton's perf_analyzer) can fill. The same
        // input also takes encoded image files, as BYTES: said in the parameters.
        "inputs": [{"name": crate::v2::INPUT, "datatype": "FP32", "shape": [-1, 3, s, s]}],
        "outputs": [{"name": crate::v2::OUTPUT, "datatype": "FP32", "shape": [-1, info.classes.len()]}],
        "parameters": {
            "architecture": info.architecture,
            "strategy": info.strategy,
            "classes": info.classes,
            "preprocessing": info.preprocessing,
            "encoded_images": {"input": crate::v2::INPUT, "datatype": "BYTES", "shape": [-1]},
            "val_accuracy": info.val_accuracy,
        },
    }))
    .into_response())
}
