#!/usr/bin/env bash
# Re-measures the figures in RELIABILITY.md, in one run:
#   - the fuzz campaign, when FUZZ_SECONDS is set (per target; FUZZ_JOBS at a time, default 2),
#     else the figures of the last campaign (fuzz/logs/figures.txt);
#   - the stable replay of every committed fuzz input;
#   - the hostile files;
#   - 20 seeded SIGKILL points (GRAFT_KILL_POINTS to change);
#   - the concurrency test and the fault tests.
# Usage: bench/reliability.sh            (about 5 minutes without fuzzing)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${FUZZ_SECONDS:-0}" -gt 0 ]; then
  rm -f fuzz/logs/figures.txt
  fuzz/campaign.sh "$FUZZ_SECONDS" "${FUZZ_JOBS:-2}" >/dev/null
fi
echo "== fuzzing (fuzz/logs/figures.txt)"
sort fuzz/logs/figures.txt 2>/dev/null || echo "no campaign figures yet: FUZZ_SECONDS=1800 bench/reliability.sh"
echo "== committed fuzz inputs replayed on stable"
for t in pth_zip pth_legacy safetensors wheel image list run_files; do
  printf '%s: %s corpus, %s regressions\n' "$t" \
    "$(find fuzz/corpus/$t -type f 2>/dev/null | wc -l)" "$(find fuzz/regressions/$t -type f 2>/dev/null | wc -l)"
done
cargo test --release -q -p graft-fuzz 2>&1 | grep -E "^test result" | head -2
echo "== hostile files"
cargo test --release -p graft-weights --test hostile 2>&1 | grep -E "^test |^test result"
cargo test --release -p graft-data --test hostile 2>&1 | grep -E "^test |^test result"
cargo test --release -p graft-data --lib list:: 2>&1 | grep -E "^test |^test result"
cargo test --release -p graft --test cli -- a_checkpoint_whose_pickle 2>&1 | grep -E "^test |^test result"
echo "== kills"
GRAFT_KILL_POINTS=${GRAFT_KILL_POINTS:-20} cargo test --release -p graft --test kill_points -- --nocapture 2>&1 | grep -E "^kill|^test result"
cargo test --release -p graft --test resume 2>&1 | grep -E "^test |^test result"
echo "== concurrency"
cargo test --release -p graft --test concurrency 2>&1 | grep -E "^test |^test result"
echo "== faults"
cargo test --release -p graft --test faults -- --nocapture 2>&1 | grep -E "^test |^test result|skipped"
cargo test --release -p graft --test cli -- results_that_cannot 2>&1 | grep -E "^test |^test result"
echo "== cache"
cargo test --release -p graft --test cache 2>&1 | grep -E "^test |^test result"
cargo test --release -p graft-transfer --lib cache 2>&1 | grep -E "^test |^test result"
