//! Four graft processes started together on one $GRAFT_HOME and one dataset, with a cold
//! feature cache: two head runs and two partial:1 runs. Every one succeeds, each equals a run
//! of the same strategy made alone in a home of its own, and the shared cache verifies clean.

#[path = "../../../tests/common/data.rs"]
mod data;

#[path = "../../../tests/common/graft.rs"]
mod graft;

use std::process::Output;

use graft::{assert_cache_verifies_clean, outcome, train_lite0 as train};

fn ok(out: Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn four_processes_on_one_home_all_succeed_with_the_results_of_runs_made_alone() {
    let root = tempfile::tempdir().expect("tmp");
    let data = root.path().join("data");
    data::hymenoptera_cut(&data, 16, 8);
    let strategies = ["head", "partial:1"];
    for s in strategies {
        let alone = root.path().join(format!("home-alone-{s}"));
        let out = train(s, &data, &root.path().join(format!("alone-{s}")), &alone)
            .output()
            .expect("run graft");
        ok(out, s);
    }
    let shared = root.path().join("home-shared");
    let children: Vec<_> = (0..4)
        .map(|i| {
            let s = strategies[i % 2];
            let out = root.path().join(format!("together-{i}"));
            (
                s,
                out.clone(),
                train(s, &data, &out, &shared).spawn().expect("spawn"),
            )
        })
        .collect();
    for (s, out, child) in children {
        ok(child.wait_with_output().expect("wait"), s);
        let alone = root.path().join(format!("alone-{s}"));
        assert!(
            outcome(&out) == outcome(&alone),
            "{} differs from {s} run alone",
            out.display()
        );
    }
    assert_cache_verifies_clean(&shared);
}
