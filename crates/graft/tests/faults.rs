//! Injected faults: a full disk, a file-size limit, a read-only run directory and cache, and
//! the cache deleted mid-run. A write that fails names its path and exits non-zero, and what
//! an earlier run wrote stays byte for byte; a cache that cannot be written or vanishes costs
//! only speed.

#[path = "../../../tests/common/data.rs"]
mod data;
#[path = "../../../tests/common/graft.rs"]
mod graft;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use graft::{graft, train_lite0};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

/// Every file under `dir`, by path, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(snapshot(&p));
        } else {
            out.insert(p.clone(), std::fs::read(&p).expect("read"));
        }
    }
    out
}

/// What a run must keep when a later run into the same folder fails: its model and result.
fn kept(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    ["model.safetensors", "model.json", "result.json"]
        .iter()
        .map(|f| (dir.join(f), std::fs::read(dir.join(f)).expect("run file")))
        .collect()
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    snapshot(dir)
        .into_keys()
        .filter(|p| p.to_string_lossy().contains(".graft-"))
        .collect()
}

/// A tmpfs mounted for the test, unmounted when dropped; `None` where mounting needs
/// privileges the test does not have.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).expect("mkdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Self(dir.to_path_buf()))
    }

    fn read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .expect("remount");
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn dataset(root: &Path) -> PathBuf {
    let data = root.join("data");
    data::hymenoptera_cut(&data, 12, 6);
    data
}

/// Runs once into `run`, then again into the same folder under `limit` (which makes writes
/// fail); checks the failure names the folder and `expected`, that the first run's model and
/// result are untouched with no temporary files left, and that the failed run's last
/// checkpoint resumes, once the fault is gone, to the same model.
fn second_run_fails_and_first_is_kept(
    data: &Path,
    run: &Path,
    home: &Path,
    limit: impl FnOnce(&mut Command),
    lift: impl FnOnce(),
    expected: &str,
) {
    ok(train_lite0("head", data, run, home)
        .output()
        .expect("run graft"));
    let before = kept(run);
    let mut again = train_lite0("head", data, run, home);
    limit(&mut again);
    let out = again.output().expect("run graft");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&run.display().to_string()) && err.contains(expected),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let after = kept(run);
    let changed: Vec<_> = before
        .iter()
        .filter(|(p, b)| after.get(*p) != Some(*b))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(
        changed.is_empty(),
        "the first run's files changed: {changed:?}"
    );
    assert_eq!(temp_files(run), Vec::<PathBuf>::new());
    lift();
    if run.join("resume/state.json").is_file() {
        let resumed = graft(home)
            .args(["-q", "train", "--json", "--resume"])
            .arg(run)
            .output()
            .expect("run graft");
        ok(resumed);
        let model = run.join("model.safetensors");
        assert!(
            std::fs::read(&model).ok() == before.get(&model).cloned(),
            "the resumed run ends with the same model"
        );
    }
}

#[test]
fn a_file_size_limit_fails_the_model_write_and_keeps_the_previous_model() {
    let root = tempfile::tempdir().expect("tmp");
    let data = dataset(root.path());
    let home = root.path().join("home");
    let run = root.path().join("run");
    // RLIMIT_FSIZE, with SIGXFSZ ignored (inherited through exec): writes past 1 MiB fail with
    // EFBIG, the same error path as a full disk, with no privileges needed.
    let limit = |cmd: &mut Command| {
        let program = cmd.get_program().to_os_string();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_os_string()).collect();
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg("trap '' XFSZ; ulimit -f 1024; exec \"$@\"")
            .arg("sh")
            .arg(program)
            .args(args);
        for (key, value) in cmd.get_envs() {
            if let Some(value) = value {
                shell.env(key, value);
            }
        }
        *cmd = shell;
    };
    second_run_fails_and_first_is_kept(&data, &run, &home, limit, || {}, "File too large");
}

#[test]
fn a_full_disk_fails_the_run_and_keeps_the_previous_model() {
    let root = tempfile::tempdir().expect("tmp");
    let data = dataset(root.path());
    let home = root.path().join("home");
    let Some(disk) = Tmpfs::mount(&root.path().join("disk"), "48m") else {
        eprintln!("skipped: mounting a tmpfs needs root (the file-size test covers the path)");
        return;
    };
    let run = disk.0.join("run");
    let filler = disk.0.join("filler");
    let fill = |_: &mut Command| {
        // Fill what is left of the disk.
        let mut f = std::fs::File::create(&filler).expect("filler");
        let block = vec![0u8; 1 << 20];
        while std::io::Write::write_all(&mut f, &block).is_ok() {}
    };
    let lift = || std::fs::remove_file(&filler).expect("free the disk");
    second_run_fails_and_first_is_kept(&data, &run, &home, fill, lift, "No space left on device");
}

#[test]
fn a_read_only_run_directory_is_an_error_and_a_read_only_cache_only_a_warning() {
    let root = tempfile::tempdir().expect("tmp");
    let data = dataset(root.path());
    let Some(ro) = Tmpfs::mount(&root.path().join("ro"), "8m") else {
        eprintln!("skipped: mounting a read-only tmpfs needs root");
        return;
    };
    std::fs::create_dir_all(ro.0.join("home/features")).expect("mkdir");
    ro.read_only();
    let run = ro.0.join("run");
    let out = train_lite0("head", &data, &run, &root.path().join("home"))
        .output()
        .expect("run graft");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&run.display().to_string()) && err.contains("Read-only"),
        "{err}"
    );

    let out = ok(
        train_lite0("head", &data, &root.path().join("run"), &ro.0.join("home"))
            .output()
            .expect("run graft"),
    );
    let err = stderr(&out);
    assert_eq!(
        err.matches("cannot write the feature cache").count(),
        1,
        "one warning: {err}"
    );
    assert!(err.contains("Read-only"), "{err}");
}

#[test]
fn the_cache_deleted_mid_run_is_made_again_and_the_run_ends_as_usual() {
    let root = tempfile::tempdir().expect("tmp");
    let data = dataset(root.path());
    let reference = root.path().join("reference");
    ok(train_lite0(
        "partial:1",
        &data,
        &reference,
        &root.path().join("home-ref"),
    )
    .output()
    .expect("run graft"));
    let home = root.path().join("home");
    let features = home.join("features");
    let run = root.path().join("run");
    let mut child = train_lite0("partial:1", &data, &run, &home)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(120);
    let count = |d: &Path| std::fs::read_dir(d).map_or(0, |r| r.count());
    while count(&features) < 8 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    // Writers may re-create shards while the folder goes: retry until it is gone once.
    while std::fs::remove_dir_all(&features).is_err() && features.exists() {}
    let status = child.wait().expect("wait");
    assert!(status.success());
    let model = |d: &Path| std::fs::read(d.join("model.safetensors")).expect("model");
    assert!(
        model(&run) == model(&reference),
        "same model as a run with its cache left alone"
    );
}
