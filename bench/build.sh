#!/usr/bin/env bash
# `cargo build --release` of the targets every benchmark uses (plus ARGS), refusing a build whose
# JPEG decoder is libjpeg's C fallback. mozjpeg-sys builds libjpeg-turbo's SIMD decoder only when
# `nasm` is present at its build, and keeps what it built: a target built before `nasm` was
# installed decodes at about half speed until it is cleaned. graft-data's build script warns, and
# cargo replays that warning on every build; a session's serving run went by with it (graft's
# concurrency-32 throughput 183 req/s against 201 once rebuilt), so the benchmarks that decode
# stop on it instead.
#
# Every benchmark builds the same set of targets (below; ARGS add to it). cargo unifies features
# over the packages and targets of one build, so scripts that each built their own few targets
# rebuilt burn and the rest for 6-7 minutes whenever the next script asked for another set, and
# a set naming only examples (`-p graft --example X`) left target/release/graft as it was.
# Usage: bench/build.sh [ARGS]
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
targets=(-p graft -p graft-run -p graft-models -p graft-transfer -p graft-data --bins
  --example random_weights --example linear_probe --example bench_inference --example bench_train
  --example bench_pipeline)
cargo build --release "${targets[@]}" "$@" 2>&1 | tee "$log" >&2
if grep -q "nasm is not installed" "$log"; then
  echo "bench/build.sh: this build decodes JPEG with libjpeg's C fallback, so decoding timings would be" \
    "about half speed. Run: apt-get install nasm && cargo clean --release -p mozjpeg-sys -p graft-data," \
    "then the benchmark again." >&2
  exit 1
fi
