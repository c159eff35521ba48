#!/usr/bin/env bash
# Fuzzes every target for SECONDS each, JOBS at a time, and collects the figures lines that
# RELIABILITY.md quotes into fuzz/logs/figures.txt.   fuzz/campaign.sh SECONDS [JOBS]
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:?usage: fuzz/campaign.sh SECONDS [JOBS]}
jobs=${2:-2}
cargo +nightly fuzz build -s none --release --debug-assertions >/dev/null
mkdir -p logs
# Every target fuzz/Cargo.toml declares, so that a new one joins the campaign by itself.
cargo +nightly fuzz list | xargs -P "$jobs" -I{} sh -c "./run.sh {} $seconds > logs/{}.summary 2>&1; tail -n 1 logs/{}.summary >> logs/figures.txt"
cat logs/figures.txt
