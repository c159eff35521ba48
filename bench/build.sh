#!/usr/bin/env bash
# `cargo build --release ARGS` for the benchmarks, refusing a build whose JPEG decoder is libjpeg's
# C fallback. mozjpeg-sys builds libjpeg-turbo's SIMD decoder only when `nasm` is present at its
# build, and keeps what it built: a target built before `nasm` was installed decodes at about half
# speed until it is cleaned. graft-data's build script warns, and cargo replays that warning on
# every build; a session's serving run went by with it (graft's concurrency-32 throughput 183
# req/s against 201 once rebuilt), so the benchmarks that decode stop on it instead.
# Usage: bench/build.sh -p PACKAGE [--example NAME ...]
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo build --release "$@" 2>&1 | tee "$log" >&2
if grep -q "nasm is not installed" "$log"; then
  echo "bench/build.sh: this build decodes JPEG with libjpeg's C fallback, so decoding timings would be" \
    "about half speed. Run: apt-get install nasm && cargo clean --release -p mozjpeg-sys -p graft-data," \
    "then the benchmark again." >&2
  exit 1
fi
