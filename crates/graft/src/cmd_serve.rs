//! `graft serve`: loads the model, then hands it to graft-serve on a tokio runtime.

use std::net::SocketAddr;
use std::time::Duration;

use graft_run::{Servable, Source};
use graft_serve::{ServeConfig, serve};

use crate::args::ServeArgs;
use crate::progress::Terminal;
use crate::settings;

pub fn run(args: &ServeArgs, quiet: bool) -> anyhow::Result<()> {
    let choice = settings::architecture(&args.model);
    let source = match &args.run {
        Some(dir) => Source::Run(dir.clone(), choice),
        None => Source::Pretrained(choice),
    };
    let config = ServeConfig {
        addr: SocketAddr::new(args.host, args.port),
        max_batch: args.max_batch,
        max_delay: Duration::from_millis(args.max_delay_ms),
        batch_wait: args.batch_wait,
        max_body: args.max_body,
        max_queue: args.max_queue,
        api_key: args.api_key.clone(),
        read_timeout: Duration::from_secs(args.read_timeout_s),
        log_requests: args.log_requests,
        name: args.name.clone(),
    };
    // Before loading: a wrong setting should not wait for the weights.
    config.check()?;
    let model = Servable::load(&source, &mut Terminal::new(quiet))?;
    let name = config.model_name(&model.card.architecture);
    // Nothing CPU-bound runs on tokio's blocking pool now (the backend decodes each batch's
    // images on the model's threads). It stays capped at the core count so that nothing put
    // there later can start tokio's default of up to 512 threads: when images were decoded
    // there, the cap took 100 MB off peak RSS at concurrency 32.
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(cores)
        .build()?;
    runtime.block_on(serve(model, config, |addr| {
        // Always printed (tests and scripts read the port from it), even with --quiet.
        eprintln!("graft serve: {name} on http://{addr}/ (Ctrl-C or SIGTERM to stop)");
    }))?;
    if !quiet {
        eprintln!("graft serve: stopped");
    }
    Ok(())
}
