#!/usr/bin/env bash
# Installs the pinned RoadRunner release the differential tests compare rrgrpc with (the reference
# `rr`), with `go install`, into the git-ignored .cache/roadrunner/<version>/rr, and prints its path.
# When Go or the module is unavailable it prints ONE line saying why and exits 1. RoadRunner's code is
# only built here, never committed. Usage: bash scripts/install-roadrunner.sh (RR_VERSION to override).
set -uo pipefail
cd "$(dirname "$0")/.."

version=${RR_VERSION:-v2025.1.15}
module=github.com/roadrunner-server/roadrunner/v2025
dest=.cache/roadrunner/$version
say() { echo "install-roadrunner: $*" >&2; }

if [ -x "$dest/rr" ]; then
  echo "$PWD/$dest/rr"
  exit 0
fi
if ! command -v go >/dev/null; then
  say "go is not installed (https://go.dev/dl): no reference rr"
  exit 1
fi
mkdir -p "$dest"
log=$(GOBIN="$PWD/$dest" timeout "${RR_INSTALL_TIMEOUT:-600}" go install "$module/cmd/rr@$version" 2>&1)
status=$?
if [ $status -eq 0 ] && [ -x "$dest/rr" ]; then
  echo "$PWD/$dest/rr"
  exit 0
fi
code=$(grep -oE '\b(403|404|410)\b' <<<"$log" | head -1)
if [ -n "$code" ]; then
  say "the Go module proxy does not serve $module@$version ($code): no reference rr"
elif [ $status -eq 124 ]; then
  say "go install $module/cmd/rr@$version took longer than ${RR_INSTALL_TIMEOUT:-600}s: no reference rr"
else
  say "go install $module/cmd/rr@$version failed: $(grep -v '^\s*$' <<<"$log" | tail -1): no reference rr"
fi
exit 1
