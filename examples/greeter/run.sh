#!/usr/bin/env bash
# Serve the greeter example, wait until it is healthy, make one call, stop (installs nothing).
#   ./run.sh          one call, then stop
#   ./run.sh --stay   one call, then keep serving until Ctrl-C
# RR and PYTHON choose the binaries (default: rr and python3 from PATH).
set -euo pipefail
cd "$(dirname "$0")"
RR=${RR:-rr}
PYTHON=${PYTHON:-python3}

"$RR" -c .rr.yaml serve &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

"$PYTHON" client.py --wait-health 30 "${NAME:-World}"

if [[ "${1:-}" == "--stay" ]]; then
  echo "serving on 127.0.0.1:9001 (Ctrl-C to stop)"
  wait "$server"
fi
