#!/usr/bin/env bash
# Fuzzes the REST API with schemathesis (PyPI) against /openapi.json of a real
# `omnirun serve`: no request may produce a 5xx (routes of features that are not
# built yet answer 501 on purpose and are left out). Fuzzed `internet: true` creates
# make real namespaces: the cleanup removes whatever the server left.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/test-services.sh
source scripts/test-services.sh
schemathesis_install
ST=$(command -v schemathesis || command -v st)
data="${OMNIRUN_TEST_DATA_DIR:-$HOME/.cache/omnirun/test-data}/servers/fuzz-$$"
rm -rf "$data"; mkdir -p "$data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
OMNIRUN_PREVIEW_PORT=0 OMNIRUN_SNAPSHOT_DIR="${OMNIRUN_TEST_SNAPSHOT_DIR:-$HOME/.cache/omnirun/test-snapshots}" \
  .build/debug/omnirun serve --data-dir "$data" --port "$port" --warm-pool 0 --prepare playground --prepare playground+net --log-level warning >"$data/server.log" 2>&1 &
server=$!
cleanup() {
  kill -9 "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  for pid in $(pgrep -f "qemu-system-x86_64.*$data/sandboxes" || true); do kill -9 "$pid" 2>/dev/null || true; done
  network_cleanup "$data"
  rm -rf "$data"
}
trap cleanup EXIT
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$port/status" >/dev/null 2>&1 && break
  sleep 0.5
done
key=$(cat "$data/owner.key")
echo "[fuzz] schemathesis $($ST --version 2>/dev/null | head -1) against http://127.0.0.1:$port"
"$ST" run "http://127.0.0.1:$port/openapi.json" \
  --header "X-API-Key: $key" \
  --checks not_a_server_error \
  --max-examples "${FUZZ_EXAMPLES:-6}" \
  --exclude-path-regex '(/watch|/stream|/mfa/)' \
  --request-timeout 60 \
  --no-color
