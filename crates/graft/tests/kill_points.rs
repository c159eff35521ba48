//! SIGKILL at seeded random moments of `graft train` (partial:1, cold cache: feature
//! extraction, training, checkpoint writes) and `graft compare` (head and partial:1). After
//! each kill the cache verifies clean (no torn entry was ever published), and the next run
//! (`--resume` where an epoch was saved) ends with the uninterrupted run's metrics and
//! byte-identical models. `GRAFT_KILL_POINTS` sets how many kills (5 by default, as in CI;
//! bench/reliability.sh runs 20).

#[path = "../../../tests/common/data.rs"]
mod data;
#[path = "../../../tests/common/graft.rs"]
mod graft;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use graft::{assert_cache_verifies_clean, outcome};
use graft_spec::SplitMix64;

const SEED: u64 = 20_261_130;

#[derive(Clone, Copy, Debug)]
enum Scenario {
    Train,
    Compare,
}

fn run(args: &[String], home: &Path) -> Command {
    let mut cmd = graft::graft(home);
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

fn args(scenario: Scenario, data: &Path, out: &Path) -> Vec<String> {
    let common = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut a = match scenario {
        Scenario::Train => common(&["-q", "train", "--strategy", "partial:1", "--epochs", "15"]),
        Scenario::Compare => common(&[
            "-q",
            "compare",
            "--strategies",
            "head,partial:1",
            "--epochs",
            "3",
            "--budget",
            "100000",
        ]),
    };
    a.extend(common(&["--force", "--patience", "1000", "--weights"]));
    a.push(data::lite0_weights().display().to_string());
    a.extend(["--data".into(), data.display().to_string()]);
    a.extend(["--out".into(), out.display().to_string()]);
    a
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().expect("run graft");
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The run folders whose results must match: the run itself, or compare's per-strategy runs.
fn run_dirs(scenario: Scenario, out: &Path) -> Vec<PathBuf> {
    match scenario {
        Scenario::Train => vec![out.to_path_buf()],
        Scenario::Compare => vec![out.join("runs/head"), out.join("runs/partial-1")],
    }
}

#[test]
fn seeded_random_kills_during_extraction_training_and_compare_end_as_if_never_killed() {
    let points: usize = std::env::var("GRAFT_KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let root = tempfile::tempdir().expect("tmp");
    let data = root.path().join("data");
    data::hymenoptera_cut(&data, 12, 6);
    let mut durations = Vec::new();
    for scenario in [Scenario::Train, Scenario::Compare] {
        let out = root.path().join(format!("reference-{scenario:?}"));
        let home = root.path().join(format!("home-reference-{scenario:?}"));
        let started = Instant::now();
        run_ok(&mut run(&args(scenario, &data, &out), &home), "reference");
        durations.push(started.elapsed());
    }
    let mut rng = SplitMix64(SEED);
    let mut landed = 0;
    for k in 0..points {
        let scenario = [Scenario::Train, Scenario::Compare][k % 2];
        let reference = root.path().join(format!("reference-{scenario:?}"));
        let total = durations[k % 2];
        let at = total.mul_f64(rng.unit());
        let home = root.path().join(format!("home-{k}"));
        let out = root.path().join(format!("run-{k}"));
        let args = args(scenario, &data, &out);
        let mut child = run(&args, &home).spawn().expect("spawn graft");
        std::thread::sleep(at);
        let finished = matches!(child.try_wait(), Ok(Some(_)));
        if !finished {
            child.kill().expect("SIGKILL");
            landed += 1;
        }
        child.wait().expect("reap");
        let phase = phase(&home, &out);
        assert_cache_verifies_clean(&home);
        let resumable = out.join("resume/state.json").is_file();
        let resumed = matches!(scenario, Scenario::Train) && resumable;
        let next: Vec<String> = match scenario {
            Scenario::Train if resumable => ["-q", "train", "--resume", &out.display().to_string()]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            _ => args.clone(),
        };
        run_ok(&mut run(&next, &home), &format!("after kill {k}"));
        for (a, b) in run_dirs(scenario, &reference)
            .iter()
            .zip(run_dirs(scenario, &out))
        {
            assert!(
                outcome(a) == outcome(&b),
                "kill {k} ({scenario:?} at {at:?}): {} differs from the uninterrupted run",
                b.display()
            );
        }
        eprintln!(
            "kill {k}: {scenario:?} at {} of {} ms: {}, then {}: identical",
            at.as_millis(),
            total.as_millis(),
            if finished {
                "had finished".to_string()
            } else {
                format!("killed in {phase}")
            },
            if resumed { "--resume" } else { "rerun" },
        );
    }
    eprintln!("kill points: {points}, landed before the end: {landed}");
    assert!(
        landed * 2 >= points,
        "most kills must land mid-run ({landed} of {points})"
    );
}

/// Where a kill landed, from what the killed process left: epochs saved, else cache entries.
fn phase(home: &Path, out: &Path) -> String {
    let epochs = |d: &Path| {
        std::fs::read_to_string(d.join("metrics.jsonl")).map_or(0, |t| t.lines().count())
    };
    let saved: usize = [
        out.to_path_buf(),
        out.join("runs/head"),
        out.join("runs/partial-1"),
    ]
    .iter()
    .map(|d| epochs(d))
    .sum();
    if saved > 0 {
        return format!("training ({saved} epochs logged)");
    }
    let shards = std::fs::read_dir(home.join("features")).map_or(0, |r| r.count());
    format!("extraction ({shards} cache shards)")
}
