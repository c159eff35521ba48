//! Progress on stderr: a bar with rate and ETA on a terminal, plain lines otherwise (logs, CI).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use graft_run::{Event, Observer};
use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    unit: &'static str,
    total: u64,
    done: u64,
    start: Instant,
    last_line: Instant,
    /// `done` when the last plain line was printed (so `finish` does not repeat it).
    printed: Option<u64>,
    quiet: bool,
}

impl Progress {
    pub fn new(label: &str, total: u64, unit: &'static str, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(&format!(
                "{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}} ETA {{eta}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style.progress_chars("=> "));
            bar.set_message(label.to_string());
            bar
        });
        let now = Instant::now();
        Self {
            bar,
            label: label.into(),
            unit,
            total,
            done: 0,
            start: now,
            last_line: now,
            printed: None,
            quiet,
        }
    }

    pub fn inc(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(bar) => bar.inc(n),
            None if !self.quiet && self.last_line.elapsed() >= Duration::from_secs(5) => {
                self.last_line = Instant::now();
                self.printed = Some(self.done);
                eprintln!("{}", self.line());
            }
            None => {}
        }
    }

    fn line(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let rate = self.done as f64 / secs;
        let eta = if rate > 0.0 {
            (self.total.saturating_sub(self.done)) as f64 / rate
        } else {
            0.0
        };
        format!(
            "{}: {}/{} {} ({:.0}%), {:.1} {}/s, ETA {:.0} s",
            self.label,
            self.done,
            self.total,
            self.unit,
            100.0 * self.done as f64 / self.total.max(1) as f64,
            rate,
            self.unit,
            eta
        )
    }

    pub fn finish(self) {
        match self.bar {
            Some(bar) => bar.finish_and_clear(),
            None if !self.quiet && self.total > 0 && self.printed != Some(self.done) => {
                eprintln!("{}", self.line())
            }
            None => {}
        }
    }
}

/// The run API's events on stderr: log lines, warnings, unreadable images and progress.
pub struct Terminal {
    pub quiet: bool,
    current: Option<Progress>,
}

impl Terminal {
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            current: None,
        }
    }
}

impl Observer for Terminal {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Log(m) => log(self.quiet, m),
            Event::Warning(m) => log(self.quiet, format!("warning: {m}")),
            Event::Unreadable { path, error } => {
                // The decoder's errors already begin with the file's name.
                let named = path.display().to_string();
                if error.starts_with(&named) {
                    eprintln!("unreadable: {error}")
                } else {
                    eprintln!("unreadable: {named} ({error})")
                }
            }
            Event::Begin { label, total, unit } => {
                if let Some(p) = self.current.take() {
                    p.finish();
                }
                self.current = Some(Progress::new(label, total, unit, self.quiet));
            }
            Event::Advance(n) => {
                if let Some(p) = &mut self.current {
                    p.inc(n);
                }
            }
            Event::End => {
                if let Some(p) = self.current.take() {
                    p.finish();
                }
            }
        }
    }
}

/// Logs a line to stderr unless quiet; results never go through here.
pub fn log(quiet: bool, msg: impl AsRef<str>) {
    if !quiet {
        eprintln!("{}", msg.as_ref());
    }
}

/// On Ctrl-C, prints `hint` on stderr and exits with 130 (a shell's code for SIGINT), instead
/// of dying silently. The work stops where the signal would have stopped it: files graft
/// writes are written atomically, so what a kill leaves, this leaves. If the handler cannot be
/// set up (which is said), Ctrl-C keeps its default action.
#[cfg(unix)]
pub fn on_ctrl_c(hint: &'static str) {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build();
    // `signal` registers the handler when called (inside the runtime), before the work starts,
    // so an early Ctrl-C is not missed.
    let set_up = runtime.and_then(|rt| {
        let interrupts = rt.block_on(async { signal(SignalKind::interrupt()) })?;
        Ok((rt, interrupts))
    });
    let (runtime, mut interrupts) = match set_up {
        Ok(s) => s,
        Err(e) => {
            eprintln!("warning: Ctrl-C will stop graft without a hint ({e})");
            return;
        }
    };
    std::thread::spawn(move || {
        if runtime.block_on(interrupts.recv()).is_some() {
            eprintln!("\ninterrupted: {hint}");
            std::process::exit(130);
        }
    });
}

/// Elsewhere Ctrl-C keeps its default action.
#[cfg(not(unix))]
pub fn on_ctrl_c(_hint: &'static str) {}
