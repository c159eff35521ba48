//! What a run tells its caller while it works. The library prints nothing: the CLI turns these
//! events into progress bars and log lines, a server into metrics, a test into assertions.

use std::path::Path;

use graft_spec::EpochRecord;
pub use graft_transfer::train::CallbackError;

/// Something that happened during a run, for people or for a caller's records.
#[derive(Debug)]
pub enum Event<'a> {
    /// A line of information.
    Log(&'a str),
    /// Something the user should know but that does not stop the run.
    Warning(&'a str),
    /// An image that could not be read; the run goes on without it unless `strict`.
    Unreadable { path: &'a Path, error: &'a str },
    /// A piece of long work starts: `total` units of `unit` (images, epochs, groups).
    Begin {
        label: &'a str,
        total: u64,
        unit: &'static str,
    },
    /// `n` more units of the current piece of work are done.
    Advance(u64),
    /// The current piece of work is done.
    End,
}

/// Receives a run's events. Every method has a default, so an observer implements only what it
/// needs.
pub trait Observer {
    fn event(&mut self, _event: Event<'_>) {}

    /// After epoch `record.epoch` of the run in `dir` is saved (metrics line, checkpoints,
    /// resume state). An error stops training with it; the saved epoch stays resumable.
    fn epoch_saved(
        &mut self,
        _dir: &Path,
        _record: &EpochRecord,
        _is_best: bool,
    ) -> Result<(), CallbackError> {
        Ok(())
    }
}

/// Hears nothing: for callers that only want the result.
pub struct Silent;

impl Observer for Silent {}

/// Helpers for the run's own code.
pub(crate) trait ObserverExt: Observer {
    fn log(&mut self, msg: impl AsRef<str>) {
        self.event(Event::Log(msg.as_ref()));
    }

    fn warn(&mut self, msg: impl AsRef<str>) {
        self.event(Event::Warning(msg.as_ref()));
    }

    fn begin(&mut self, label: &str, total: u64, unit: &'static str) {
        self.event(Event::Begin { label, total, unit });
    }
}

impl<O: Observer + ?Sized> ObserverExt for O {}
