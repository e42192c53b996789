#!/usr/bin/env bash
# Short smoke run of every fuzz target (default 60 s each; FUZZ_SECONDS to
# change). Needs cargo-fuzz (`cargo install cargo-fuzz`) and a C++ compiler;
# it runs on the stable toolchain with `--sanitizer none` (the fuzzed code is
# safe Rust, so bounds and overflow checks catch what ASan would).
# Crashes land in fuzz/artifacts/<target>/; copy each into
# tests/fixtures/fuzz/<target>/ so `cargo test` replays it forever.
set -euo pipefail
cd "$(dirname "$0")"
secs="${FUZZ_SECONDS:-60}"
for target in batch_decode record_decode txn_state_decode open_dir read_only_dir inspect_segment index_check checkpoint_scan offset_record replication_decode ops; do
  mkdir -p "corpus/$target"
  echo "== $target for ${secs}s"
  cargo fuzz run -O -a --sanitizer none "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536
done
