//! A strategy that fails mid-way is a failed row in compare's report, not a lost report: the
//! failure is injected by an observer (the run API's per-epoch hook), after partial:1 saved
//! its first epoch.

#[path = "../../../tests/common/data.rs"]
mod data;

use std::path::Path;

use graft_run::compare::{CompareSpec, compare};
use graft_run::observer::CallbackError;
use graft_run::{Observer, Strategy, StudySpec};
use graft_spec::EpochRecord;

/// Fails the run whose directory ends with `suffix` once epoch `epoch` is saved.
struct FailAfter {
    suffix: &'static str,
    epoch: usize,
    saved: Vec<(String, usize)>,
}

impl Observer for FailAfter {
    fn epoch_saved(
        &mut self,
        dir: &Path,
        record: &EpochRecord,
        _: bool,
    ) -> Result<(), CallbackError> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.saved.push((name.clone(), record.epoch));
        if name.ends_with(self.suffix) && record.epoch == self.epoch {
            return Err(format!("failure injected after epoch {}", record.epoch).into());
        }
        Ok(())
    }
}

#[test]
fn a_strategy_failing_mid_way_is_a_failed_row_and_the_report_is_still_written() {
    let home = tempfile::tempdir().expect("tmp");
    let tmp = tempfile::tempdir().expect("tmp");
    let data_dir = tmp.path().join("data");
    data::hymenoptera_cut(&data_dir, 8, 4);
    let out = tmp.path().join("cmp");
    std::fs::create_dir_all(&out).expect("mkdir");
    std::fs::write(out.join("notes.txt"), b"mine").expect("write");
    let mut study = StudySpec::new(&data_dir);
    study.model.weights = Some(data::lite0_weights());
    // The feature cache goes where this test says, not into the user's.
    study.model.home = home.path().to_path_buf();
    study.out = Some(out.clone());
    study.force = true;
    let spec = CompareSpec {
        strategies: Some(vec![Strategy::Head, Strategy::Partial(1)]),
        epochs: 2,
        ..CompareSpec::new(study)
    };
    let mut obs = FailAfter {
        suffix: "partial-1",
        epoch: 0,
        saved: Vec::new(),
    };
    let done = compare(&spec, &mut obs).expect("compare itself succeeds");
    assert_eq!(done.failed, 1);
    assert!(
        obs.saved.contains(&("partial-1".to_string(), 0)),
        "{:?}",
        obs.saved
    );
    assert!(
        !obs.saved.contains(&("partial-1".to_string(), 1)),
        "stopped after the failure"
    );
    assert_eq!(std::fs::read(out.join("notes.txt")).expect("kept"), b"mine");
    let rows = &done.results.rows;
    assert_eq!(rows[0].status, graft_report::Status::Ok);
    assert_eq!(rows[1].status, graft_report::Status::Failed);
    let error = rows[1].error.as_deref().unwrap_or("");
    assert!(error.contains("failure injected after epoch 0"), "{error}");
    assert!(
        done.results.conclusion.contains("partial:1 failed"),
        "{}",
        done.results.conclusion
    );
    let html = std::fs::read_to_string(out.join("report.html")).expect("report written anyway");
    assert!(html.contains("failed") && html.contains("partial:1"));
    // The failed run kept its last saved epoch: it can be resumed.
    assert!(out.join("runs/partial-1/resume/state.json").is_file());
}
