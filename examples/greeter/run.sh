#!/usr/bin/env bash
# The main example, from a fresh Debian machine: set up (../../.ci/setup: php, protoc and a venv
# with rrgrpc), serve greeter.v1.Greeter with `rr serve`, wait until it is healthy, make one call.
#   ./run.sh          set up, serve, one call, stop
#   ./run.sh --stay   the same, then keep serving until Ctrl-C
set -euo pipefail
cd "$(dirname "$0")"
bash ../../.ci/setup
VENV=$(cd ../.. && pwd)/.venv

"$VENV/bin/rr" -c .rr.yaml serve &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

"$VENV/bin/python" client.py --wait-health 30 "${NAME:-World}"

if [[ "${1:-}" == "--stay" ]]; then
  echo "serving on 127.0.0.1:9001 (Ctrl-C to stop; try: $VENV/bin/rr -c .rr.yaml workers -i)"
  wait "$server"
fi
