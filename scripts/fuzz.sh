#!/usr/bin/env bash
# Fuzz campaigns (not part of npm test): scripts/fuzz.sh [seconds per target] [target ...].
# cargo-fuzz on the nightly toolchain (libFuzzer, AddressSanitizer); allocations past
# -malloc_limit_mb and RSS past -rss_limit_mb count as findings, as do hangs (-timeout).
# New coverage goes to a scratch corpus (fuzz/corpus holds the small, kept seeds); crash
# inputs land in fuzz/artifacts/<target>/, which npm test replays (tests/fuzz_replay.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gguf safetensors model tokenizer chat_template peft gguf_lora)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz build -O
for t in "${targets[@]}"; do
  work="${FUZZ_WORK:-/tmp/lorafuse-fuzz}/$t"
  mkdir -p "$work" "fuzz/artifacts/$t"
  echo "== $t: ${secs}s" >&2
  cargo +nightly fuzz run -O "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -malloc_limit_mb=1024 -rss_limit_mb=2048 -timeout=10 -max_len=262144 \
    -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|INFO: Done|==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)" || true
  echo "   corpus: $(ls "$work" | wc -l) units, $(du -sh "$work" | cut -f1)" >&2
done
