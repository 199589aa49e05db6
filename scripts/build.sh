#!/usr/bin/env bash
# Builds the npm package into pkg/: release wasm (SIMD128), wasm-bindgen glue (--target web),
# wasm-opt, and the JS wrapper. Does nothing when none of its inputs changed since the last
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

stamp=$({
  echo "features=$FEATURES wasm-opt=$("$WASM_OPT" --version)"
  find Cargo.toml Cargo.lock .cargo src shaders js scripts/build.sh -type f -print0 | sort -z | xargs -0 sha256sum
} | sha256sum | cut -d' ' -f1)
STAMP="$TARGET/build-$OUT.stamp"
if [ -f "$OUT/wasm/lorafuse_bg.wasm" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$stamp" ]; then
  printf '[build] %s/ is up to date\n' "$OUT" >&2
  exit 0
fi

cargo build --release --target wasm32-unknown-unknown --lib ${FEATURES:+--features "$FEATURES"}
rm -rf "$OUT" && mkdir -p "$OUT/wasm"
wasm-bindgen --target web --out-dir "$OUT/wasm" --out-name lorafuse \
  "$TARGET/wasm32-unknown-unknown/release/lorafuse.wasm"
"$WASM_OPT" -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$OUT/wasm/lorafuse_bg.wasm" -o "$OUT/wasm/lorafuse_bg.wasm"
cp js/*.js js/*.d.ts "$OUT/"
echo "$stamp" > "$STAMP"
printf '[build] %s/ ready: wasm %s bytes (gzip %s)\n' "$OUT" "$(wc -c < "$OUT/wasm/lorafuse_bg.wasm")" "$(gzip -9c "$OUT/wasm/lorafuse_bg.wasm" | wc -c)" >&2
