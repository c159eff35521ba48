//! `graft serve`: a trained model behind HTTP. Three parts, each a task with one channel, as
//! in text-embeddings-inference: the router (axum) validates requests (an image's header
//! included) and answers; the queue ([`queue::batcher`]) gathers images from concurrent
//! requests into batches; the backend ([`queue::backend`], its own thread) decodes each batch's
//! images in parallel and runs them.
//!
//! Endpoints: `POST /v1/predict` (image bytes or multipart; Hugging Face's
//! `[{label, score, index}]`), KServe V2 (`/v2/health/live`, `/v2/health/ready`,
//! `/v2/models/{name}`, `/v2/models/{name}/infer`), `GET /metrics` (Prometheus) and `GET /`
//! (a page to try the model). Bounded queue (full: 429 with Retry-After), body limit (413),
//! request timeout (408), optional bearer key (401), graceful shutdown on SIGTERM and Ctrl-C.

pub mod api;
pub mod metrics;
mod page;
pub mod queue;
pub mod v2;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use graft_run::Servable;
use tokio::sync::mpsc;
use tower_http::timeout::TimeoutLayer;

use api::{ApiError, AppState, Inner, ModelInfo};
use metrics::Metrics;

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub max_batch: usize,
    pub max_delay: Duration,
    pub batch_wait: queue::BatchWait,
    pub max_body: usize,
    pub max_queue: usize,
    pub api_key: Option<String>,
    /// A request (headers and body) must arrive within this, or it is answered 408.
    pub read_timeout: Duration,
    /// One line per request on stderr.
    pub log_requests: bool,
    /// The model's name in the V2 paths and metadata; `None`: the architecture's.
    pub name: Option<String>,
}

impl ServeConfig {
    /// Settings no server can work with, named by their options: checked before a model is
    /// loaded (`graft serve`), and again by [`serve`].
    pub fn check(&self) -> Result<(), ServeError> {
        let bad_name = self.name.as_deref().is_some_and(|n| {
            n.is_empty()
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        });
        let wrong = [
            (self.max_batch == 0, "--max-batch must be at least 1"),
            (self.max_queue == 0, "--max-queue must be at least 1"),
            (
                self.max_body == 0,
                "--max-body must be at least 1 byte (every request would be a 413)",
            ),
            (
                self.read_timeout.is_zero(),
                "--read-timeout-s must be at least 1 (every request would be a 408)",
            ),
            (
                bad_name,
                "--name may hold only letters, digits, '.', '_' and '-' (it is a URL path segment)",
            ),
        ];
        let reasons: Vec<&str> = wrong.iter().filter(|w| w.0).map(|w| w.1).collect();
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(ServeError::Invalid(reasons.join("; ")))
        }
    }

    /// The name the model is served under: `--name`, else `architecture` as a URL path
    /// segment (`efficientnet-lite0`).
    pub fn model_name(&self, architecture: &str) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| architecture.replace('_', "-"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("the server stopped: {0}")]
    Io(std::io::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("the server stopped after a failure: {0}")]
    Failed(String),
}

/// The model-readiness routes: served by [`router`] and, like health, open under `--api-key`
/// ([`observe`]), so named once for both.
const MODEL_READY: &str = "/v2/models/{name}/ready";
const MODEL_READY_AT_VERSION: &str = "/v2/models/{name}/versions/{version}/ready";

/// Counts every answer by route and status, times it, and checks the key where one is set
/// (the page, health and metrics stay open, as Prometheus and load balancers expect).
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    // The page and what it shows before a key is typed (`/v2/models`) stay open too, and so do
    // the server's metadata and the model's readiness, which probes ask for as they ask for
    // health.
    let open = matches!(
        route.as_str(),
        "/" | "/metrics"
            | "/v2"
            | "/v2/health/live"
            | "/v2/health/ready"
            | "/v2/models"
            | MODEL_READY
            | MODEL_READY_AT_VERSION
    );
    let authorized = match (&state.api_key, open) {
        (Some(key), false) => request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| given == key),
        _ => true,
    };
    // A body declared too large is refused before it is read (the limit on what is read
    // still holds for bodies that do not declare their length).
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let response = if declared.is_some_and(|n| n > state.max_body) {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is over the {} byte limit (--max-body)",
                state.max_body
            ),
        )
        .into_response()
    } else if authorized {
        next.run(request).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API key (Authorization: Bearer KEY)",
        )
        .into_response()
    };
    state.metrics.request(&route, response.status().as_u16());
    if state.log_requests {
        eprintln!(
            "{} {route} {} {:.1} ms",
            method,
            response.status().as_u16(),
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    if route.starts_with("/v1") || route.ends_with("/infer") {
        state.metrics.total.observe(start.elapsed().as_secs_f64());
    }
    response
}

/// What the server answers, for the errors of requests that asked for something else.
const ROUTES: &str = "POST /v1/predict, GET /v2, /v2/health/live and /ready, \
    /v2/models/NAME (and /ready), POST /v2/models/NAME/infer, GET /metrics and the page at /";

/// A path no route has: a JSON 404 that says what there is (axum's own has an empty body).
async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route {method} {}; graft serve answers {ROUTES}",
            uri.path()
        ),
    )
}

/// A route asked with a method it does not take: a JSON 405 (axum's own has an empty body).
async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} does not take {method}; graft serve answers {ROUTES}",
            uri.path()
        ),
    )
}

fn router(state: AppState, config: &ServeConfig) -> Router {
    let live = || async { axum::Json(serde_json::json!({"live": true})) };
    let ready = || async { axum::Json(serde_json::json!({"ready": true})) };
    let this = state.info.name.clone();
    let metrics = |State(s): State<AppState>| async move {
        (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            s.metrics.render(),
        )
    };
    let own = move |State(s): State<AppState>| {
        let path = [("name".to_string(), this.clone())].into();
        async move { api::metadata(State(s), axum::extract::Path(path)).await }
    };
    // The Open Inference Protocol's model routes, each also under `/versions/{version}` (the
    // one version, "1"), as KServe and Triton clients may ask for them.
    Router::new()
        .route("/", get(|| async { Html(page::PAGE) }))
        .route("/v1/predict", post(api::predict))
        .route("/v2", get(api::server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models", get(own))
        .route("/v2/models/{name}", get(api::metadata))
        .route(MODEL_READY, get(api::model_ready))
        .route("/v2/models/{name}/infer", post(api::infer))
        .route("/v2/models/{name}/versions/{version}", get(api::metadata))
        .route(MODEL_READY_AT_VERSION, get(api::model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(api::infer),
        )
        .route("/metrics", get(metrics))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(config.max_body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.read_timeout,
        ))
        .with_state(state)
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

/// Serves `model` until SIGTERM or Ctrl-C, then stops accepting, finishes what is in flight
/// and returns. `listening(addr)` is called once the socket is bound (port 0: the real port).
pub async fn serve(
    model: Servable,
    config: ServeConfig,
    listening: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    config.check()?;
    let metrics = Arc::new(Metrics::default());
    let card = &model.card;
    let info = ModelInfo {
        name: config.model_name(&card.architecture),
        architecture: card.architecture.clone(),
        strategy: card.strategy.to_string(),
        classes: card.classes.clone(),
        input_size: card.input_size as usize,
        preprocessing: card.preprocessing.clone(),
        val_accuracy: card.val_accuracy,
    };
    let preprocess = model.model.preprocess;
    let (jobs, queued) = mpsc::channel(config.max_queue);
    let (to_backend, batches) = mpsc::channel(1);
    let flow = Arc::new(queue::Flow::default());
    let (backend_flow, backend_metrics) = (flow.clone(), metrics.clone());
    let backend = std::thread::Builder::new()
        .name("graft-backend".into())
        .spawn(move || queue::backend(model, batches, backend_flow, backend_metrics))
        .map_err(ServeError::Io)?;
    let batcher = tokio::spawn(queue::batcher(
        queued,
        to_backend,
        config.max_batch,
        config.max_delay,
        config.batch_wait,
        flow.clone(),
        metrics.clone(),
    ));
    let state: AppState = Arc::new(Inner {
        jobs,
        flow,
        info,
        preprocess,
        metrics,
        api_key: config.api_key.clone(),
        max_queue: config.max_queue,
        max_body: config.max_body,
        log_requests: config.log_requests,
    });
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|error| ServeError::Bind {
            addr: config.addr,
            error,
        })?;
    listening(listener.local_addr().map_err(ServeError::Io)?);
    let app = router(state, &config);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(ServeError::Io)?;
    // Every request has been answered and the router (holding the queue's sender) is gone:
    // the batcher and then the backend end by themselves.
    // A panic in either (its requests got errors) fails the exit status too, not only the log.
    let batcher = batcher.await.map_err(|e| e.to_string());
    let backend = tokio::task::spawn_blocking(move || backend.join())
        .await
        .map_err(|e| e.to_string())
        .and_then(|joined| joined.map_err(|_| "the backend thread panicked".to_string()));
    batcher.and(backend).map_err(ServeError::Failed)
}
