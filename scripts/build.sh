#!/usr/bin/env bash
# Builds the npm package into pkg/: release wasm (SIMD128), wasm-bindgen glue (--target web),
# wasm-opt, and the JS wrapper; twice: pkg/wasm (single-threaded) and pkg/wasm-mt (CPU worker
# threads on shared memory: std rebuilt with atomics on the pinned nightly of setup.sh). Does nothing when none of its inputs changed since the last
# build (a stamp of their hashes). LORAFUSE_FEATURES (e.g. "dev") and LORAFUSE_PKG (the
# output folder) build other variants: `npm run bench` builds pkg-dev/ with the dev feature.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
FEATURES="${LORAFUSE_FEATURES:-}"
OUT="${LORAFUSE_PKG:-pkg}"
TARGET="${CARGO_TARGET_DIR:-target}"

# The native wasm-opt from setup.sh, else npm's binaryen (never Debian's: it breaks the output).
WASM_OPT=wasm-opt
[ -x .cache/tools/wasm-opt ] && WASM_OPT=.cache/tools/wasm-opt

NIGHTLY=$(cat scripts/nightly-toolchain)
stamp=$({
  echo "features=$FEATURES wasm-opt=$("$WASM_OPT" --version) nightly=$NIGHTLY"
  find Cargo.toml Cargo.lock .cargo src shaders js scripts/build.sh -type f -print0 | sort -z | xargs -0 sha256sum
} | sha256sum | cut -d' ' -f1)
STAMP="$TARGET/build-$OUT.stamp"
if [ -f "$OUT/wasm/lorafuse_bg.wasm" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$stamp" ]; then
  printf '[build] %s/ is up to date\n' "$OUT" >&2
  exit 0
fi

# wasm-bindgen glue and wasm-opt for one build: $1 the cargo output, $2 the package folder.
finish() {
  wasm-bindgen --target web --out-dir "$OUT/$2" --out-name lorafuse "$1"
  "$WASM_OPT" -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    --enable-threads "$OUT/$2/lorafuse_bg.wasm" -o "$OUT/$2/lorafuse_bg.wasm"
  printf '[build] %s/%s: wasm %s bytes (gzip %s)\n' "$OUT" "$2" "$(wc -c < "$OUT/$2/lorafuse_bg.wasm")" "$(gzip -9c "$OUT/$2/lorafuse_bg.wasm" | wc -c)" >&2
}

cargo build --release --target wasm32-unknown-unknown --lib ${FEATURES:+--features "$FEATURES"}
# Shared memory, and the TLS exports wasm-bindgen needs to give each thread its own stack.
MT_FLAGS="-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128"
for a in --shared-memory --import-memory --max-memory=4294967296 \
  --export=__wasm_init_tls --export=__tls_size --export=__tls_align --export=__tls_base; do
  MT_FLAGS="$MT_FLAGS -C link-arg=$a"
done
RUSTFLAGS="$MT_FLAGS" cargo "+$NIGHTLY" build -Z build-std=panic_abort,std --release \
  --target wasm32-unknown-unknown --lib --target-dir "$TARGET/mt" ${FEATURES:+--features "$FEATURES"}
rm -rf "$OUT" && mkdir -p "$OUT"
finish "$TARGET/wasm32-unknown-unknown/release/lorafuse.wasm" wasm
finish "$TARGET/mt/wasm32-unknown-unknown/release/lorafuse.wasm" wasm-mt
cp js/*.js js/*.d.ts "$OUT/"
echo "$stamp" > "$STAMP"
