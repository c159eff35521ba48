//! Running the `graft` binary in the test crates of the `graft` package (included with
//! `#[path]`): one home per test, never the network, and what a finished run is compared by.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The binary under test with `home` as `$GRAFT_HOME` and downloads off.
pub fn graft(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_graft"));
    cmd.env("GRAFT_HOME", home).env("GRAFT_OFFLINE", "1");
    cmd
}

/// The last stdout line of a successful `--json` command, parsed (its stderr if it failed).
pub fn ok_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// A run's epochs (without wall-clock seconds), and its model and predictions bytes: what two
/// runs that must agree are compared by.
pub fn outcome(dir: &Path) -> (Vec<serde_json::Value>, Vec<u8>, Vec<u8>) {
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("json");
            v.as_object_mut().map(|o| o.remove("seconds"));
            v
        })
        .collect();
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    (metrics, read("model.safetensors"), read("predictions.csv"))
}

/// `graft cache verify` on `home` finds every entry sound.
pub fn assert_cache_verifies_clean(home: &Path) {
    let out = graft(home)
        .args(["cache", "verify"])
        .output()
        .expect("run graft");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && report.contains(" 0 damaged"),
        "{report}"
    );
}

/// `graft train` of EfficientNet-Lite0 with `strategy` for 3 epochs, JSON on stdout (needs the
/// `data` module beside this one).
pub fn train_lite0(strategy: &str, data: &Path, out: &Path, home: &Path) -> Command {
    let mut cmd = graft(home);
    cmd.args(["-q", "train", "--json", "--force", "--epochs", "3"])
        .args(["--strategy", strategy])
        .arg("--weights")
        .arg(super::data::lite0_weights())
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out);
    cmd
}

/// Sends `child` a Ctrl-C (SIGINT) once `started` holds (polled every few milliseconds, for
/// at most two minutes), and returns what it printed and how it ended. Its stderr must be piped.
pub fn interrupt_when(child: std::process::Child, started: &dyn Fn() -> bool) -> Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !started() {
        assert!(
            std::time::Instant::now() < deadline,
            "the point to interrupt at never came"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    child.wait_with_output().expect("wait")
}
