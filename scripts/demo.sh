#!/usr/bin/env bash
# npm run demo: set up, build, and serve the demo page on 127.0.0.1 (PORT, default 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/fetch-model.sh
bash scripts/build.sh
PORT="${PORT:-8080}"
echo
echo "lorafuse demo: open http://127.0.0.1:${PORT}/www/  (Ctrl-C to stop)"
exec node scripts/serve.mjs . "$PORT"
