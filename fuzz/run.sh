#!/usr/bin/env bash
# Fuzzes one target for SECONDS with libFuzzer, from its committed corpus, and prints a
# figures line for RELIABILITY.md. New interesting inputs go to fuzz/work/TARGET (not
# committed); findings go to fuzz/artifacts/TARGET: minimise one, fix it, then copy it to
# fuzz/regressions/TARGET so the stable replay test keeps it fixed.
#   fuzz/run.sh TARGET SECONDS        (TIMEOUT=N: libFuzzer's per-input limit, default 2 s)
set -uo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh TARGET SECONDS}
seconds=${2:?usage: fuzz/run.sh TARGET SECONDS}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p "work/$target" "artifacts/$target" logs
# -s none: no sanitizer (graft is safe Rust; the C JPEG decoder is not instrumented either),
# for throughput on a small machine. An input that makes graft allocate more than 2 GiB is a
# finding, and so is one that takes over 2 s. -fork=1 keeps fuzzing after a timeout: libFuzzer
# times inputs by the wall clock, so on a loaded machine a starved input times out too; each
# timeout is timed again alone below, and only one that is slow alone is a finding. Without a
# sanitizer, libFuzzer's timeout handler can deadlock in malloc (it writes the input from a
# signal handler): on a loaded machine, raise TIMEOUT and judge inputs by the re-timing.
# --debug-assertions: an integer overflow panics (a finding) instead of wrapping silently, as a
# V2 request's shape product did unnoticed until 2026-12-04.
cargo +nightly fuzz run -s none --release --debug-assertions "$target" "work/$target" "corpus/$target" -- \
  -fork=1 -ignore_timeouts=1 -ignore_ooms=0 -ignore_crashes=0 \
  -max_total_time="$seconds" -timeout="${TIMEOUT:-2}" -rss_limit_mb=2048 -malloc_limit_mb=2048 \
  -max_len=65536 -artifact_prefix="artifacts/$target/" \
  > "logs/$target.log" 2>&1
status=$?
last=$(grep -E '^#[0-9]+:' "logs/$target.log" | tail -n 1)
execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
grep -E 'ERROR|SUMMARY' "logs/$target.log" | head -n 5
slow=0
for a in artifacts/"$target"/timeout-*; do
  [ -e "$a" ] || continue
  ms=$(./target/x86_64-unknown-linux-gnu/release/"$target" "$a" 2>&1 | sed -nE 's/.* in ([0-9]+) ms.*/\1/p')
  echo "timeout artifact $a takes ${ms:-?} ms alone"
  [ "${ms:-0}" -gt 2000 ] && slow=$((slow + 1))
done
crashes=$(find "artifacts/$target" -type f -name 'crash-*' -o -type f -name 'oom-*' | wc -l)
echo "figures: target=$target seconds=$seconds execs=${execs:-0} crashes_or_ooms=$crashes slow_timeouts=$slow exit=$status"
