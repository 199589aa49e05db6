#!/usr/bin/env bash
# The issue-5 benchmark on a real GPU, for a session lent a GPU machine (the device tool),
# which has no network and starts bare. Two steps:
#   here:  bash scripts/device-bench.sh prepare
#          (the Vulkan loader's .deb into .gl/, the release bench binary into .devbench/;
#          both git-ignored through .git/info/exclude)
#   there: run(command = "bash scripts/device-bench.sh run", carry = [".gl", ".devbench"],
#              timeout_s = 480)
# "run" prints the GPU, then bench/native.rs's per-kernel table through wgpu's Vulkan
# backend: decode (n = 1) and prefill (n = 64) at SmolLM2's shapes for f32, f16 and Q4_1
# weights, each with "% ceiling" against that GPU's own copy bandwidth and the r16 adapter's
# overhead against the bytes (decode) or FLOPs (prefill) it adds; the issue's targets are
# >= 50% and <= 1.2x. Copy the table into bench/RESULTS.md with the GPU named. (SmolLM2's
# 98 MB GGUF is over the 64 MiB a call may carry, so the whole-model bench stays here.)
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
prepare)
  for d in /.gl/ /.devbench/; do grep -qx "$d" .git/info/exclude || echo "$d" >> .git/info/exclude; done
  mkdir -p .gl .devbench /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  # shellcheck disable=SC2086
  apt-get $o update -qq && (cd .gl && apt-get $o download libvulkan1)
  exe=$(cargo bench --bench linear --no-run 2>&1 | grep -o 'target/release/deps/linear-[0-9a-f]*' | tail -1)
  cp "$exe" .devbench/linear
  ls -la .gl .devbench
  ;;
run)
  # The loader only where the machine lacks one (unpacking over a working system can break it).
  if ! ldconfig -p | grep -q libvulkan.so.1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -f "$icd" ] && export VK_DRIVER_FILES="$icd"
  export WGPU_BACKEND=vulkan
  nvidia-smi --query-gpu=name,memory.total,clocks.max.memory --format=csv 2>/dev/null || true
  out="${OUT:-/tmp/lorafuse-device}"
  mkdir -p "$out"
  BENCH_COLD_MIB=256 BENCH_MIN_MS=200 .devbench/linear gpu f32,f16,q4_1 | tee "$out/device-linear.md"
  ;;
*)
  echo "usage: $0 prepare|run" >&2
  exit 2
  ;;
esac
