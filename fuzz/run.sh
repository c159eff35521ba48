#!/usr/bin/env bash
# Fuzzes one target for SECONDS with libFuzzer, from its committed corpus, and prints a
# figures line for RELIABILITY.md. New interesting inputs go to fuzz/work/TARGET (not
# committed); a crash goes to fuzz/artifacts/TARGET: minimise it, fix it, then copy it to
# fuzz/regressions/TARGET so the stable replay test keeps it fixed.
#   fuzz/run.sh TARGET SECONDS [JOBS]
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh TARGET SECONDS}
seconds=${2:?usage: fuzz/run.sh TARGET SECONDS}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p "work/$target" "artifacts/$target" logs
# -s none: no sanitizer (graft is safe Rust; the C JPEG decoder is not instrumented either),
# for throughput on a small machine. -rss_limit_mb/-malloc_limit_mb: an input that makes graft
# allocate more than 2 GiB is a finding; -timeout=2: so is one that takes over 2 s.
cargo +nightly fuzz run -s none --release "$target" "work/$target" "corpus/$target" -- \
  -max_total_time="$seconds" -timeout=2 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
  -max_len=65536 -artifact_prefix="artifacts/$target/" -print_final_stats=1 \
  2>&1 | tee "logs/$target.log" | grep -E "^#[0-9]+.*(pulse|DONE)|ERROR|SUMMARY|stat::" | tail -n 40
execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "logs/$target.log" | grep -Eo '[0-9]+$' || echo 0)
crashes=$(find "artifacts/$target" -type f | wc -l)
echo "figures: target=$target seconds=$seconds execs=$execs artifacts=$crashes"
