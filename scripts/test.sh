#!/usr/bin/env bash
# Sets up (idempotent) and runs every test: native Rust (CPU + wgpu on lavapipe), the SIMD128
# kernels in Node (wasm-bindgen-test), then the built package in Node and headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/fetch-model.sh
export LORAFUSE_REQUIRE_MODEL=1
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# The GPU tests must run, not skip: setup installed Mesa's lavapipe Vulkan driver.
export LORAFUSE_REQUIRE_GPU=1
# Mesa's Vulkan loader complains on every device open without one.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="/tmp/lorafuse-xdg-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi

start=$SECONDS
step() { printf '\n== [%dm%02ds] %s\n' $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)) "$*" >&2; }
step "native: cargo test (CPU + wgpu)"
cargo test --tests --features dev
step "wasm32 in Node: SIMD128 kernels, crafted headers, fuzz corpora"
cargo test --target wasm32-unknown-unknown --features dev --test op_wasm --test hostile --test fuzz_replay
step "build the npm package"
bash scripts/build.sh
step "JS API: Node, headless Chromium (WebGPU + CPU), packed tarball"
node --test --test-concurrency=1 tests/js/
step "done"
