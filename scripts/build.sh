#!/usr/bin/env bash
# Builds the npm package into pkg/: release wasm (SIMD128), wasm-bindgen glue (--target web),
# wasm-opt from the npm binaryen (Debian's breaks wasm-bindgen output), and the JS wrapper.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"

cargo build --release --target wasm32-unknown-unknown --lib
rm -rf pkg && mkdir -p pkg/wasm
wasm-bindgen --target web --out-dir pkg/wasm --out-name lorafuse \
  target/wasm32-unknown-unknown/release/lorafuse.wasm
wasm-opt -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
  pkg/wasm/lorafuse_bg.wasm -o pkg/wasm/lorafuse_bg.wasm
cp js/*.js js/*.d.ts pkg/
printf '[build] pkg/ ready: wasm %s bytes\n' "$(wc -c < pkg/wasm/lorafuse_bg.wasm)" >&2
