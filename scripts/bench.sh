#!/usr/bin/env bash
# npm run bench: wasm SIMD128 kernels in Node, then native CPU and wgpu (lavapipe). Tables go
# to stdout and bench/out/; bench/RESULTS.md records them with the machine and date.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
LORAFUSE_FEATURES=dev LORAFUSE_PKG=pkg-dev bash scripts/build.sh
export PATH="$HOME/.cargo/bin:$PATH"
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="/tmp/lorafuse-xdg-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi
mkdir -p bench/out
{ date -u; lscpu | grep -E 'Model name|^CPU\(s\)'; } | tee bench/out/machine.txt
bash scripts/fetch-model.sh
for f in f32 f16; do  # SmolLM2's unquantized Hugging Face forms, exported from the GGUF
  [ -f ".cache/models/smollm2-hf-$f/model.safetensors" ] ||
    cargo run -q --release --example gguf_to_hf -- .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf ".cache/models/smollm2-hf-$f" "$f"
done
node bench/wasm.mjs | tee bench/out/wasm.md
node bench/model.mjs | tee bench/out/model.md
node bench/adapters.mjs | tee bench/out/adapters.md
node bench/chat.mjs | tee bench/out/chat.md
node bench/structured.mjs | tee bench/out/structured.md
cargo bench --features dev --bench linear -- "$@" | tee bench/out/native.md
cargo bench --features dev --bench model | tee bench/out/model-native.md
