#!/usr/bin/env bash
# The GPU benchmark on a real GPU, in one call on a bare NVIDIA Linux machine (no network, no
# Rust): the device tool of a session lent one. Two steps:
#   here:  bash scripts/device-bench.sh prepare
#          (the Vulkan loader and glvnd .debs into .gl/; the release bench binaries, stripped,
#          and SmolLM2's GGUF header into .devbench/; both git-ignored through
#          .git/info/exclude; about 25 MB, so the call carries them with the working tree)
#   there: run(command = "bash scripts/device-bench.sh run", carry = [".gl", ".devbench"],
#              timeout_s = 540)
# "run" prints the GPU, then, each also saved under $OUT:
# - model.md: SmolLM2-135M Q4_1 (its real header, random weights of its shapes and formats:
#   the same kernels at the same speed, without carrying 98 MB) prefill and decode tok/s,
#   decode with adapters, and one decode step and one prefill per kernel (GPU timestamps):
#   op, µs, % of the step, GB/s, % of the GPU's copy bandwidth; dispatches, workgroups and
#   bytes per dispatch, host recording and submit time;
# - linear.md: per-kernel decode (n = 1) and prefill (n = 64) at SmolLM2's shapes and larger
#   models' (Qwen2.5-0.5B, Llama-3.2-1B) for f32, f16 and Q4_1, with the r16 adapter's
#   overhead against its bytes or FLOPs;
# - pytorch.md: PyTorch (and PEFT) on the same GPU with SmolLM2's shapes (bench/pytorch_anchor.py).
# Copy the tables into bench/RESULTS.md with the GPU named.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
prepare)
  for d in /.gl/ /.devbench/; do grep -qx "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude; done
  mkdir -p .gl .devbench /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  # shellcheck disable=SC2086
  apt-get $o update -qq && (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  bash scripts/fetch-model.sh
  for b in model linear; do
    exe=$(cargo bench --features dev --bench "$b" --no-run 2>&1 | grep -o "target/release/deps/$b-[0-9a-f]*" | tail -1)
    cp "$exe" ".devbench/$b" && strip ".devbench/$b"
  done
  .devbench/model header .devbench/smollm2-header.gguf
  ls -la .gl .devbench
  ;;
run)
  # The loaders only where the machine lacks them (unpacking over a working system can break it).
  if ! ldconfig -p | grep -q libvulkan.so.1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -f "$icd" ] && export VK_DRIVER_FILES="$icd"
  export LD_LIBRARY_PATH="/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}" WGPU_BACKEND=vulkan
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv 2>/dev/null || true
  out="${OUT:-/tmp/lorafuse-device}"
  mkdir -p "$out"
  LORAFUSE_MODEL_HEADER=.devbench/smollm2-header.gguf .devbench/model gpu adapters 2>&1 | tee "$out/model.md"
  BENCH_COLD_MIB=256 BENCH_MIN_MS=150 .devbench/linear gpu f32,f16,q4_1,q4_k,q6_k large 2>&1 | tee "$out/linear.md"
  PYTHONUNBUFFERED=1 python3 bench/pytorch_anchor.py 2>&1 | tee "$out/pytorch.md" || true
  ;;
*)
  echo "usage: $0 prepare|run" >&2
  exit 2
  ;;
esac
