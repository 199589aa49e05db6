#!/usr/bin/env bash
# Makes SmolLM2-135M-Instruct.Q4_K_M.gguf in .cache/models with llama.cpp's own quantizer
# (llama-cpp-python's llama_model_quantize, requantizing the Q4_1 file as llama-quantize
# --allow-requantize does): the mixed file people download (Q5_0 and Q8_0 where rows of 576
# are not whole 256-blocks, Q4_K/Q6_K in ffn_down, Q6_K output rows). For the K-quant model
# test (tests/smollm2.rs, LORAFUSE_REQUIRE_KQUANT=1) and the CPU bench; not part of npm test:
# building llama.cpp takes ~10 minutes on 2 cores (once: the venv is kept in .cache).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${LORAFUSE_MODEL_DIR:-$PWD/.cache/models}"
OUT="$DIR/SmolLM2-135M-Instruct.Q4_K_M.gguf"
SHA_FILE=scripts/kquant-model.sha256
bash scripts/fetch-model.sh
check() { [ -f "$OUT" ] && [ -f "$SHA_FILE" ] && (cd "$DIR" && sha256sum -c --status "$OLDPWD/$SHA_FILE"); }
if check; then
  exit 0
fi
VENV="$PWD/.cache/lcp-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import llama_cpp' 2>/dev/null; then
  echo "[make-kquant-model] building llama-cpp-python 0.3.36 (llama.cpp, once; ~10 min)" >&2
  python3 -m venv "$VENV"
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
    "$VENV/bin/pip" install -q llama-cpp-python==0.3.36
fi
"$VENV/bin/python" - "$DIR/SmolLM2-135M-Instruct.Q4_1.gguf" "$OUT.part" <<'PY'
import ctypes, sys
import llama_cpp as l
p = l.llama_model_quantize_default_params()
p.ftype = l.LLAMA_FTYPE_MOSTLY_Q4_K_M
p.allow_requantize = True
p.nthread = 2
rc = l.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(p))
sys.exit(rc)
PY
mv "$OUT.part" "$OUT"
if [ -f "$SHA_FILE" ]; then
  check || { echo "[make-kquant-model] sha256 mismatch (another llama.cpp?)" >&2; exit 1; }
else
  (cd "$DIR" && sha256sum "$(basename "$OUT")") > "$SHA_FILE"
  echo "[make-kquant-model] wrote $SHA_FILE: commit it" >&2
fi
