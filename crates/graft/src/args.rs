//! Command-line arguments, as clap sees them. `settings.rs` turns them into resolved settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use graft_run::evaluate::EvalSplit;
use graft_run::export::Format;
use graft_spec::{HeadKind, HeadSolver, Strategy, defaults};

#[derive(Parser, Debug)]
#[command(
    name = "graft",
    version,
    about = "Transfer learning on images, fast on a CPU",
    long_about = "graft reuses CNNs pretrained on ImageNet for your own images.\n\n\
        Strategies: pretrained (use the ImageNet model as it is), head (freeze the backbone, train \
        a new classifier), partial:N (also train the top N block groups), scratch (same \
        architecture, fresh weights).\n\n\
        Start with `graft weights list`, then `graft predict --model efficientnet_lite0 photo.jpg`.\n\
        Results go to stdout; progress and logs go to stderr.",
    after_help = "Weights are cached under $GRAFT_HOME (default: ~/.cache/graft). Set GRAFT_OFFLINE=1 to never download."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Worker threads for decoding and compute (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,

    /// No progress bars or informational logs on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the models graft knows and fetch their pretrained weights.
    #[command(subcommand)]
    Weights(WeightsCommand),
    /// Top-k ImageNet classes for images (strategy 1: the pretrained model as it is).
    Predict(PredictArgs),
    /// Top-1/top-5 accuracy of a pretrained model on labelled ImageNet images.
    Evaluate(EvaluateArgs),
    /// Adapt a pretrained model to your labelled images (head, partial:N or scratch).
    Train(TrainArgs),
    /// Run the strategies side by side under one budget; write report.html/.md and results.json.
    Compare(CompareArgs),
    /// Linear-probe accuracy of every block group (transferability by depth); suggests a freeze point.
    Probe(ProbeArgs),
    /// Choose a strategy from the data, the probe and a fine-tuning candidate, train it and explain why.
    Auto(AutoArgs),
    /// Learning-rate range test: train briefly at rates rising from --start-lr to --end-lr,
    /// plot the loss, suggest a --lr.
    LrFind(LrFindArgs),
    /// Write a trained run's model (or a pretrained model as it is) as ONNX or safetensors.
    Export(ExportArgs),
    /// Serve a trained run's model (or a pretrained model) over HTTP, with a web page.
    Serve(ServeArgs),
    /// Size, check and trim the feature cache under $GRAFT_HOME/features.
    #[command(subcommand)]
    Cache(CacheCommand),
}

#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// Entries and bytes, per model.
    Du {
        #[arg(long)]
        json: bool,
    },
    /// Read every entry; remove damaged ones (checksum) and temporary files left by killed runs.
    // `check` too: the command's own summary says "size, check and trim".
    #[command(visible_alias = "check")]
    Verify,
    /// Remove least recently used entries until the cache is at most SIZE (e.g. 2GB, 500MiB).
    Prune {
        #[arg(long, value_name = "SIZE", value_parser = graft_spec::parse_size)]
        max_size: usize,
    },
}

/// Which images decisions are taken on (the epoch, the strategy): never the reported split,
/// unless asked.
#[derive(Args, Debug, Clone)]
pub struct ProtocolArgs {
    /// Share of each class's training images set apart to take decisions on (epoch, strategy)
    /// when the dataset gives no selection split (train/ val/ test/ gives one: val).
    #[arg(long, default_value_t = defaults::SELECT_FRACTION, value_name = "FRACTION")]
    pub select_fraction: f64,

    /// Take decisions on the reported split itself, as tutorials do: the figure is then
    /// optimistic, and every output says so.
    #[arg(long)]
    pub select_on_eval: bool,
}

/// What `probe`, `compare` and `auto` share: the dataset and the seed.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// An ImageFolder (train/ and val/ or test/, or a split.csv, or neither: a seeded stratified
    /// split is made), or a list file (.csv/.tsv: path,label[,split]).
    #[arg(long, value_name = "DATASET")]
    pub data: PathBuf,

    /// Seed for the split, the classifiers' initialisation and the shuffling.
    #[arg(long, default_value_t = defaults::SEED)]
    pub seed: u64,

    /// Fraction held out for validation when the dataset gives no split.
    #[arg(long, default_value_t = defaults::VAL_FRACTION)]
    pub val_fraction: f64,

    #[command(flatten)]
    pub protocol: ProtocolArgs,

    /// Write into the output directory even if it exists (graft replaces only its own files).
    #[arg(long)]
    pub force: bool,

    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(
    after_help = "The test (Smith 2017; fastai's lr_find) trains the strategy's trainable part from its fresh state \
for --steps mini-batches of the training images, the rate growing geometrically, with the batch, views, loss and \
optimizer `graft train` uses; it stops when the smoothed loss passes 4x its lowest. The suggestion is a tenth of the \
rate at the lowest smoothed loss; the steepest fall is shown too. Writes lr_find.json and lr_find.svg; the selection \
and reported splits are not read. Then: graft train --lr <suggested> ..."
)]
pub struct LrFindArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    #[command(flatten)]
    pub data: DataArgs,

    /// head | partial:N | scratch.
    #[arg(long, default_value = "head")]
    pub strategy: Strategy,

    /// Output directory (default: runs/<dataset>-<model>-<strategy>-lr-find, numbered if taken).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// The lowest rate tried.
    #[arg(long, default_value_t = graft_spec::lr_find::START, value_name = "LR")]
    pub start_lr: f64,

    /// The highest rate tried.
    #[arg(long, default_value_t = graft_spec::lr_find::END, value_name = "LR")]
    pub end_lr: f64,

    /// Mini-batches (one rate each).
    #[arg(long, default_value_t = graft_spec::lr_find::STEPS, value_name = "N")]
    pub steps: usize,

    #[command(flatten)]
    pub learn: LearnArgs,

    /// Refuse the dataset if any training image cannot be read (default: report and skip).
    #[arg(long)]
    pub strict: bool,
}

/// How the trainable part learns: what `train` and `lr-find` share.
#[derive(Args, Debug, Clone)]
pub struct LearnArgs {
    #[arg(long, default_value_t = defaults::WEIGHT_DECAY)]
    pub weight_decay: f32,

    /// Label smoothing for the cross-entropy loss (e.g. 0.1).
    #[arg(long, value_name = "EPS")]
    pub label_smoothing: Option<f32>,

    /// The new classifier: linear, or VGG-style mlp[:HIDDEN] (two hidden layers with ReLU and
    /// dropout 0.5; hidden width 512 unless given).
    #[arg(long, default_value = "linear", value_name = "KIND")]
    pub head: HeadKind,

    /// Weight the loss by inverse class frequency (for imbalanced datasets).
    #[arg(long)]
    pub class_balanced: bool,

    /// Augmented training views (random resized crop, flip, colour jitter) computed once per
    /// image and cached; epochs use them in turn. Default: 0 for head, 2 for partial/scratch.
    #[arg(long, value_name = "K")]
    pub cached_views: Option<usize>,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    #[command(flatten)]
    pub data: DataArgs,

    /// Output directory: report.html, report.md, results.json, plots/, and runs/<strategy>/.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Strategies to run, comma-separated (default: pretrained when your classes map onto
    /// ImageNet's, head, partial:1, partial:2, partial:<half the groups>, scratch).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub strategies: Option<Vec<Strategy>>,

    /// Most epochs any strategy trains (each also stops early after --patience epochs without
    /// improvement).
    #[arg(long, default_value_t = defaults::EPOCHS)]
    pub epochs: usize,

    /// Seconds of training each strategy may use (frozen-feature extraction, done once and
    /// cached, is not counted); an epoch starts only if it is expected to end within it.
    #[arg(long, default_value_t = defaults::COMPARE_BUDGET_S, value_name = "SECONDS")]
    pub budget: f64,

    #[arg(long, default_value_t = defaults::PATIENCE)]
    pub patience: usize,

    /// `class,imagenet` rows for the pretrained strategy (see `graft train --help`).
    #[arg(long, value_name = "FILE")]
    pub class_map: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    #[command(flatten)]
    pub data: DataArgs,

    /// Output directory for probe.html, probe.md, probe.json and plots/ (default:
    /// runs/<dataset>-<model>-probe).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Epochs of each linear classifier (the same recipe as `graft train --strategy head`).
    #[arg(long, default_value_t = defaults::EPOCHS)]
    pub epochs: usize,
}

#[derive(Args, Debug)]
pub struct AutoArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    #[command(flatten)]
    pub data: DataArgs,

    /// Run directory of the chosen strategy (default: runs/<dataset>-<model>-auto); the probe
    /// goes to its probe/ folder and the explanation to auto.md.
    #[arg(long, value_name = "RUN_DIR")]
    pub out: Option<PathBuf>,

    /// Most epochs of the chosen strategy's training (and of the fine-tuning candidate's, which
    /// is kept when chosen).
    #[arg(long, default_value_t = defaults::EPOCHS)]
    pub epochs: usize,
}

#[derive(Subcommand, Debug)]
pub enum WeightsCommand {
    /// Models with their input size, parameters, block groups, weight source and cache state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Download a model's weights into the cache (verified by sha256).
    Fetch {
        /// Model name, as `graft weights list` shows it.
        #[arg(required_unless_present = "all")]
        model: Option<String>,
        /// Fetch every model's weights.
        #[arg(long)]
        all: bool,
    },
    /// The tensors in a weight file (.pth zip or legacy, or safetensors): names, types, shapes.
    /// Every tensor is read, so a file that passes is readable end to end.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// Which network, with which weights: what every command that loads a model takes.
#[derive(Args, Debug, Clone)]
pub struct Architecture {
    /// Model name, as `graft weights list` shows it (e.g. efficientnet_lite0, resnet50, vgg16).
    #[arg(long, short, default_value = defaults::MODEL)]
    pub model: String,

    /// Weights file (.pth in either PyTorch format, or .safetensors); no network needed.
    /// Default: the cached published weights, downloaded on first use.
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,
}

/// A model and the batch it runs in: the commands that run passes of their own. `export`
/// writes a graph with a dynamic batch and `serve` batches by `--max-batch`, so they take
/// [`Architecture`] alone (a `--batch-size` there would do nothing, silently).
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    #[command(flatten)]
    pub arch: Architecture,

    /// Images per forward pass (default 32). For `graft train`, also the training batch
    /// (default 32 for head, 16 for partial:N and scratch).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// A run directory from `graft train`: predict its classes instead of ImageNet's.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["weights", "model"])]
    pub run: Option<PathBuf>,

    /// How many classes to show per image (at least 1).
    #[arg(long, short = 'k', default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    pub top_k: u16,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,

    /// Image files or folders (searched recursively for .jpg .jpeg .png .gif .bmp .webp).
    #[arg(required = true, value_name = "IMAGE_OR_DIR")]
    pub inputs: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// A run directory from `graft train`: evaluate its classifier on DATASET (a dataset as
    /// `graft train` takes it; the split is chosen by --split).
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["weights", "model"])]
    pub run: Option<PathBuf>,

    /// With --run: which split of DATASET to evaluate (train, val/test, or all).
    #[arg(long, default_value = "val")]
    pub split: EvalSplit,

    /// With --run: test-time augmentation (none or flip); default: the run's own.
    #[arg(long, value_name = "VIEWS")]
    pub tta: Option<graft_spec::Tta>,

    /// Without --run: a list file (.csv/.tsv with `path,label`, paths relative to the file) or a
    /// folder with one subfolder per class, labels being ImageNet wnids (n01440764) or class
    /// indices (0..999).
    #[arg(long, value_name = "DATASET")]
    pub data: PathBuf,

    /// Print one JSON object (n, top1, top5, seconds, ...) at the end of stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Strategies: head = every block group frozen, a new linear classifier trained on \
features computed once and cached (under $GRAFT_HOME/features). Frozen layers always run in \
inference mode: BatchNorm uses its running statistics and does not update them. partial:N = the \
top N block groups train too, on activations cached at the freeze point; scratch = fresh weights, \
everything trains. `graft weights list` shows each model's block groups; `graft probe` suggests N; \
`graft compare` measures them all."
)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// An ImageFolder (with train/ and val/ or test/, or a split.csv, or neither: then a seeded
    /// stratified split is made), or a list file (.csv/.tsv: path,label[,split]).
    #[arg(long, value_name = "DATASET", required_unless_present = "resume")]
    pub data: Option<PathBuf>,

    /// Continue an interrupted run (Ctrl-C, kill) from its last completed epoch, with the
    /// settings it was started with.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["data", "out"])]
    pub resume: Option<PathBuf>,

    /// With --strategy pretrained: a `class,imagenet` file saying which ImageNet classes (wnid,
    /// index or name; several rows per class allowed) stand for each of your classes. Without
    /// it, classes are matched to ImageNet names and wnids (`ants` -> ant, `bees` -> bee).
    #[arg(long, value_name = "FILE")]
    pub class_map: Option<PathBuf>,

    /// pretrained | head | partial:N | scratch.
    #[arg(long, default_value = "head")]
    pub strategy: Strategy,

    /// Run directory (default: runs/<dataset>-<model>-<strategy>, numbered if taken).
    #[arg(long, value_name = "RUN_DIR")]
    pub out: Option<PathBuf>,

    /// Write into --out even if it exists (files graft writes are replaced; others are kept).
    #[arg(long)]
    pub force: bool,

    #[arg(long, default_value_t = defaults::EPOCHS)]
    pub epochs: usize,

    /// Seconds of training after which no new epoch starts (an epoch starts only if it is
    /// expected to end within the budget; frozen-feature extraction is not counted).
    #[arg(long, value_name = "SECONDS")]
    pub time_budget: Option<f64>,

    /// Seed for the split, the head's initialisation and the shuffling.
    #[arg(long, default_value_t = defaults::SEED)]
    pub seed: u64,

    /// Peak learning rate (AdamW, 1 epoch warmup, cosine decay).
    #[arg(long, default_value_t = defaults::LR)]
    pub lr: f64,

    #[command(flatten)]
    pub learn: LearnArgs,

    /// partial:N: start the new head from a linear probe of the pretrained network (L-BFGS on
    /// the pooled features of the training images) instead of random weights.
    #[arg(long)]
    pub head_first: bool,

    /// How `head` fits a linear classifier: adamw (epochs, the best chosen on the selection
    /// split) or lbfgs (logistic regression in one go, its L2 strength chosen by 5-fold
    /// cross-validation on the training images; no epochs).
    #[arg(long, default_value = "adamw", value_name = "SOLVER")]
    pub head_solver: HeadSolver,

    /// Test-time augmentation of the reported split: none, or flip (each image and its mirror
    /// image, their class probabilities averaged; the mirrored features are cached too).
    #[arg(long, default_value_t = defaults::TTA, value_name = "VIEWS")]
    pub tta: graft_spec::Tta,

    /// Stop after this many epochs without a better accuracy on the selection split.
    #[arg(long, default_value_t = defaults::PATIENCE)]
    pub patience: usize,

    /// Fraction held out for validation when the dataset gives no split.
    #[arg(long, default_value_t = defaults::VAL_FRACTION)]
    pub val_fraction: f64,

    #[command(flatten)]
    pub protocol: ProtocolArgs,

    /// Refuse the dataset if any image cannot be read (default: report and skip).
    #[arg(long)]
    pub strict: bool,

    /// End stdout with one JSON object (strategy, model, train_images, val_images,
    /// val_accuracy, best_epoch, seconds, run_dir, ...).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(
    after_help = "ONNX: the whole network and its classifier as one graph (opset 17, BatchNorm folded into the \
convolutions, a dynamic batch dimension), with the class names, preprocessing, input size, graft version and \
accuracy in its metadata. safetensors: the state dict under the original checkpoint's tensor names, which \
PyTorch loads with load_state_dict(strict=True), plus FILE.json describing it."
)]
pub struct ExportArgs {
    /// Run directory whose trained model to export; without it, --model (and --weights) as it is.
    #[arg(value_name = "RUN_DIR", conflicts_with_all = ["weights", "model"])]
    pub run: Option<PathBuf>,

    #[command(flatten)]
    pub model: Architecture,

    /// onnx or safetensors.
    #[arg(long, default_value = "onnx")]
    pub format: Format,

    /// The file to write (replaced atomically if it exists).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// ONNX: end the graph in a Softmax (probabilities) instead of logits.
    #[arg(long)]
    pub probabilities: bool,

    /// Print what was written as one JSON object.
    #[arg(long)]
    pub json: bool,

    /// Never accepted (see [`export_has_no_batch_size`]); hidden from --help.
    #[arg(long, hide = true, value_name = "N", num_args = 0..=1, default_missing_value = "", value_parser = export_has_no_batch_size)]
    pub batch_size: Option<usize>,
}

/// `graft export --batch-size`: refused with what an export does instead. clap's own error for
/// an unknown option says only that it is unknown (for `serve`, its tip named `--batch-wait`,
/// an unrelated option).
fn export_has_no_batch_size(_: &str) -> Result<usize, String> {
    Err("an exported model's batch dimension is dynamic: export takes no batch size".into())
}

/// `graft serve --batch-size`: refused with the option that sets a pass's batch in the server.
fn serve_has_no_batch_size(_: &str) -> Result<usize, String> {
    Err("graft serve gathers requests into passes of up to --max-batch images (default 32)".into())
}

#[derive(Args, Debug)]
#[command(
    after_help = "Endpoints: POST /v1/predict (image bytes or multipart; ?top_k=5), KServe V2 \
(/v2, /v2/health/live, /v2/health/ready, /v2/models/NAME, /v2/models/NAME/ready, \
/v2/models/NAME/infer, each model route also under /v2/models/NAME/versions/1; JSON or Triton's \
binary tensor data), GET /metrics (Prometheus), GET / (a page to try the model). Stops on SIGTERM \
or Ctrl-C after answering what is in flight."
)]
pub struct ServeArgs {
    /// Run directory whose trained model to serve; without it, --model (and --weights) as it is.
    #[arg(value_name = "RUN_DIR", conflicts_with_all = ["weights", "model"])]
    pub run: Option<PathBuf>,

    #[command(flatten)]
    pub model: Architecture,

    /// The model's name in the V2 paths (/v2/models/NAME) and metadata: letters, digits, '.',
    /// '_' and '-'. Default: the architecture's (efficientnet-lite0), a trained run's too.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Address to listen on; anything but loopback must be asked for.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,

    /// Port (0: any free port, printed at start-up).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,

    /// Most images in one forward pass.
    #[arg(long, default_value_t = 32)]
    pub max_batch: usize,

    /// Longest wait for more images once one is queued and the model is free, in
    /// milliseconds.
    #[arg(long, default_value_t = 5)]
    pub max_delay_ms: u64,

    /// When a batch stops waiting: adaptive (a request goes straight to an idle model unless
    /// other requests are being read, or the batch just answered had more images, whose clients
    /// are coming back; while the model is busy, batches keep gathering) or always (every batch
    /// waits out --max-delay-ms or fills, as Triton does).
    #[arg(long, default_value = "adaptive", value_name = "POLICY")]
    pub batch_wait: graft_serve::queue::BatchWait,

    /// Largest request body (e.g. 10MB, 512KiB).
    #[arg(long, default_value = "10MB", value_parser = graft_spec::parse_size)]
    pub max_body: usize,

    /// Most images waiting for the model; beyond it requests get 429 with Retry-After.
    #[arg(long, default_value_t = 256)]
    pub max_queue: usize,

    /// Require `Authorization: Bearer KEY` on the prediction and model endpoints (health,
    /// metrics, the page and its `/v2/models` summary stay open).
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,

    /// Seconds a request may take to arrive (a slower client gets 408).
    #[arg(long, default_value_t = 30)]
    pub read_timeout_s: u64,

    /// Log one line per request on stderr.
    #[arg(long)]
    pub log_requests: bool,

    /// Never accepted (see [`serve_has_no_batch_size`]); hidden from --help.
    #[arg(long, hide = true, value_name = "N", num_args = 0..=1, default_missing_value = "", value_parser = serve_has_no_batch_size)]
    pub batch_size: Option<usize>,
}
