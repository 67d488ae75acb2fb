#!/usr/bin/env bash
# Seeds every fuzz target's corpus with real records of its format (one fixture line
# a file) and a state saved by a real replay, then runs each target for SECONDS
# (default 60). A finding is written to fuzz/artifacts/<target>/ and stops that target.
# Needs nightly and cargo-fuzz: `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
fixtures=../tests/fixtures

seed() {
  local target=$1
  shift
  mkdir -p "corpus/$target"
  for file in "$@"; do
    split -l 1 -d -a 4 "$fixtures/$file" "corpus/$target/${file%.jsonl}-"
  done
}
seed native native.jsonl
seed cloudtrail cloudtrail.jsonl
seed gcp_audit gcp_audit.jsonl
seed k8s_audit k8s_audit.jsonl
seed ocsf ocsf.jsonl
seed grants grants.jsonl
seed auto native.jsonl cloudtrail.jsonl gcp_audit.jsonl k8s_audit.jsonl ocsf.jsonl grants.jsonl
mkdir -p corpus/state_load
cargo run --release --quiet --manifest-path ../Cargo.toml -- replay --quiet "$fixtures/native.jsonl" \
  --grants "$fixtures/grants.jsonl" --state-out corpus/state_load/native-state.json >/dev/null 2>&1

# Without AddressSanitizer: librdkafka's build (zstd) cannot link its configure checks with
# it, and what the targets look for is a panic, which safe Rust code reports without it.
cargo +nightly fuzz build --sanitizer none
for target in native cloudtrail gcp_audit k8s_audit ocsf grants auto state_load; do
  cargo +nightly fuzz run --sanitizer none "$target" "corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=4096
done
