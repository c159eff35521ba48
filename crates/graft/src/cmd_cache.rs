//! `graft cache du`, `graft cache verify` and `graft cache prune`.

use graft_run::cache;
use serde_json::json;

use crate::args::CacheCommand;
use crate::progress::log;

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Exit status 1 when verify found damaged entries (they are removed, and will be computed
/// again), so scripts can tell.
pub fn run(command: &CacheCommand, quiet: bool) -> anyhow::Result<usize> {
    let home = graft_weights::graft_home();
    let dir = cache::dir(&home);
    match command {
        CacheCommand::Du { json } => {
            let u = cache::usage(&dir)?;
            if *json {
                let models: serde_json::Map<_, _> = u
                    .models
                    .iter()
                    .map(|(m, (n, b))| (m.clone(), json!({"entries": n, "bytes": b})))
                    .collect();
                let out = json!({"dir": dir, "entries": u.entries, "bytes": u.bytes,
                    "models": models, "temp_files": u.temp_files, "temp_bytes": u.temp_bytes});
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(0);
            }
            for (model, (n, bytes)) in &u.models {
                println!("{model:<24} {n:>8} entries {:>12}", mib(*bytes));
            }
            println!(
                "{:<24} {:>8} entries {:>12}",
                "total",
                u.entries,
                mib(u.bytes)
            );
            if u.temp_files > 0 {
                println!(
                    "{:<24} {:>8} files   {:>12}  (writes in progress or left by a killed run; `graft cache verify` removes old ones)",
                    "temporary",
                    u.temp_files,
                    mib(u.temp_bytes)
                );
            }
            log(quiet, format!("cache: {}", dir.display()));
            Ok(0)
        }
        CacheCommand::Verify => {
            let r = cache::verify(&dir)?;
            for p in &r.corrupt {
                println!("removed damaged entry {}", p.display());
            }
            for p in &r.stale_temp {
                println!("removed temporary file {}", p.display());
            }
            println!(
                "checked {} entries: {} damaged (removed; computed again when next needed), {} stale temporary files removed",
                r.checked,
                r.corrupt.len(),
                r.stale_temp.len()
            );
            Ok(usize::from(!r.corrupt.is_empty()))
        }
        CacheCommand::Prune { max_size } => {
            let r = cache::prune(&dir, *max_size as u64)?;
            println!(
                "removed {} entries ({}), kept {} ({}), least recently used first",
                r.removed,
                mib(r.freed),
                r.kept,
                mib(r.kept_bytes)
            );
            Ok(0)
        }
    }
}
