//! `graft lr-find`: settings in, the library's range test out, rendered as text or JSON.

use graft_spec::lr_find::{self, LrStop};

use crate::args::LrFindArgs;
use crate::progress::Terminal;
use crate::settings;

/// Returns the number of training images that could not be read.
pub fn run(args: &LrFindArgs, quiet: bool) -> anyhow::Result<usize> {
    let (spec, range) = settings::lr_find(args);
    let mut obs = Terminal::new(quiet);
    let found = graft_run::lr_find::lr_find(&spec, range, &mut obs)?;
    let t = &found.file;
    if let Some(note) = &found.solver_note {
        eprintln!("note: {note}");
    }
    if args.data.json {
        let mut value = serde_json::to_value(t)?;
        value["dir"] = serde_json::Value::String(found.dir.display().to_string());
        println!("{value}");
        return Ok(found.unreadable);
    }
    let stopped = match t.stopped {
        LrStop::Completed => "every step ran".to_string(),
        LrStop::Diverged => format!("the loss diverged after {} steps", t.points.len()),
    };
    println!(
        "{} {} on {}: {} training images, batch {}, rates {:.0e} to {:.0e} over {} steps ({stopped})",
        t.model,
        t.strategy,
        t.data.display(),
        t.train_images,
        t.batch_size,
        t.range.start,
        t.range.end,
        t.range.steps,
    );
    match &t.suggestion {
        Some(s) => {
            println!(
                "suggested --lr {:.1e} (a tenth of {:.1e}, where the smoothed loss is lowest)",
                s.suggested, s.minimum
            );
            if !s.bounded {
                println!(
                    "the loss was still falling at {:.0e}: the rate that is too high lies beyond the range \
                     (a higher --end-lr finds it); any rate up to the suggestion trains",
                    t.range.end
                );
            }
            match s.steepest {
                Some(lr) => println!("steepest fall at {lr:.1e}"),
                None => println!("the loss never fell: check the data, or try a wider range"),
            }
            if t.backbone_lr_scale != 1.0 {
                println!(
                    "(the rate is the new head's; trained groups learn at {}x it)",
                    t.backbone_lr_scale
                );
            }
        }
        None => println!(
            "too few steps ran to read the curve ({}): try a lower --start-lr or more --steps",
            t.points.len()
        ),
    }
    println!("curve: {}", found.dir.join(lr_find::PLOT).display());
    if found.unreadable > 0 {
        eprintln!(
            "{} training images could not be read (listed above); the curve was run without them",
            found.unreadable
        );
    }
    Ok(found.unreadable)
}
